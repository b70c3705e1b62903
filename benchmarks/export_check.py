"""An exported checkpoint against kgpt on a whole question file: same answers, same logits.

Exports CHECKPOINT with ``kgpt.export`` into a temporary directory, loads it with
transformers alone (``AutoModelForCausalLM``, ``AutoTokenizer``), and for every question
of QUESTIONS compares (1) transformers' greedy answer with ``kgpt.evaluate``'s and (2) the
logits of both models over the question and kgpt's answer. Prints one JSON line.

    python benchmarks/export_check.py CHECKPOINT QUESTIONS

Only for models asked directly (a recall-then-read checkpoint's two models are checked by
tests/test_export.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import transformers

from kgpt.answering import MAX_ANSWER_CHARS, load_answerer
from kgpt.checkpoint import read_checkpoint
from kgpt.data.corpus import read_questions
from kgpt.evaluate import predict_places
from kgpt.export import export
from kgpt.vocab import MASK_CHAR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("questions", type=Path)
    a = ap.parse_args()
    vocab = read_checkpoint(a.checkpoint).vocab
    model = load_answerer(a.checkpoint, vocab).model.eval()
    questions = read_questions(a.questions)
    t0 = time.perf_counter()
    ours = predict_places(model, vocab, questions)
    with tempfile.TemporaryDirectory() as tmp:
        out = export(a.checkpoint, Path(tmp) / "hf")
        tok = transformers.AutoTokenizer.from_pretrained(out)
        hf = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
        same, worst = 0, 0.0
        for q, answer in zip(questions, ours):
            ids = tok(q.text + MASK_CHAR, return_tensors="pt").input_ids
            budget = min(MAX_ANSWER_CHARS, model.max_length - ids.shape[1])
            gen = hf.generate(ids, max_new_tokens=budget, do_sample=False, eos_token_id=tok.mask_token_id,
                              pad_token_id=tok.pad_token_id)
            theirs = tok.decode(gen[0, ids.shape[1]:]).split(MASK_CHAR)[0].split("\n")[0]
            same += theirs == answer
            full = tok(q.text + MASK_CHAR + answer, return_tensors="pt").input_ids[:, : model.max_length]
            with torch.no_grad():
                worst = max(worst, (hf(full).logits - model(full)[0]).abs().max().item())
    print(json.dumps({"checkpoint": a.checkpoint.name, "variant": model.config.variant, "questions": len(questions),
                      "same_answers": same, "max_abs_logit_difference": worst, "architecture": type(hf).__name__,
                      "transformers": transformers.__version__, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
