"""A kgpt checkpoint as a Hugging Face transformers model and tokenizer.

Two variants have a transformers architecture that computes exactly what kgpt computes:

* vanilla as GPT-2 (``GPT2LMHeadModel``): learned positions, pre-LayerNorm blocks, exact
  GELU, an untied head without bias. GPT-2 keeps its projections as ``Conv1D`` (the
  transpose of ``nn.Linear``) and the three attention inputs in one ``c_attn``.
* rope as GPT-NeoX (``GPTNeoXForCausalLM``): rotary positions on every dimension of the
  head, sequential residuals (``use_parallel_residual=False``). GPT-NeoX rotates the pairs
  (j, j + d/2) of a head where kgpt rotates (2i, 2i + 1), at the same frequencies, so the
  query and key rows of each head are reordered (evens, then odds); the scores q·k do
  not change under a permutation applied to both.

The perceiver and the synthesizer have no such architecture. The character vocabulary
becomes a ``tokenizers`` word-level model over single characters, PAD □ and MASK ⁇ its
special tokens, every id as kgpt numbers it. A recall-then-read checkpoint exports its
reader to the directory and its recaller to ``DIR/recaller``. Only this module imports
transformers (the ``hf`` extra).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from kgpt.answering import MAX_ANSWER_CHARS, Answerer, AnswerPolicy, RecallAnswerer, load_answerer
from kgpt.checkpoint import read_checkpoint
from kgpt.confidence import LOGIT_CLIP, SIGNAL, Calibration
from kgpt.data.corpus import read_questions
from kgpt.data.reader import ReaderSettings
from kgpt.errors import KgptError
from kgpt.evaluate import predict_places, score
from kgpt.model import GPT
from kgpt.vocab import MASK_CHAR, PAD_CHAR, CharVocab

EXPORTS = {"vanilla": "GPT-2 (GPT2LMHeadModel)", "rope": "GPT-NeoX (GPTNeoXForCausalLM)"}
INSTALL = "pip install 'kgpt[hf]' (from a clone: pip install -e '.[hf]')"


def _no_architecture(what: str, variant: str) -> KgptError:
    return KgptError(f"{what} a {variant} model, which no transformers architecture computes; kgpt exports "
                     + " and ".join(f"{v} (as {a})" for v, a in EXPORTS.items()))


def _transformers():
    try:
        import tokenizers
        import transformers
    except ImportError:
        raise KgptError(f"kgpt export needs transformers and tokenizers; install them with {INSTALL}") from None
    return transformers, tokenizers


def gpt2_state(model: GPT) -> dict[str, torch.Tensor]:
    """kgpt's vanilla weights under GPT-2's names and layouts."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {"transformer.wte.weight": sd["tok_emb.weight"], "transformer.wpe.weight": sd["pos_emb"][0],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"],
           "lm_head.weight": sd["head.weight"]}
    for i in range(model.config.n_layer):
        b, h = f"blocks.{i}.", f"transformer.h.{i}."
        attn = [sd[f"{b}attn.{name}.weight"] for name in ("query", "key", "value")]
        out.update({
            f"{h}ln_1.weight": sd[f"{b}ln1.weight"], f"{h}ln_1.bias": sd[f"{b}ln1.bias"],
            f"{h}ln_2.weight": sd[f"{b}ln2.weight"], f"{h}ln_2.bias": sd[f"{b}ln2.bias"],
            f"{h}attn.c_attn.weight": torch.cat(attn, dim=0).t().contiguous(),  # Conv1D: (in, out)
            f"{h}attn.c_attn.bias": torch.cat([sd[f"{b}attn.{n}.bias"] for n in ("query", "key", "value")]),
            f"{h}attn.c_proj.weight": sd[f"{b}attn.proj.weight"].t().contiguous(), f"{h}attn.c_proj.bias": sd[f"{b}attn.proj.bias"],
            f"{h}mlp.c_fc.weight": sd[f"{b}mlp.0.weight"].t().contiguous(), f"{h}mlp.c_fc.bias": sd[f"{b}mlp.0.bias"],
            f"{h}mlp.c_proj.weight": sd[f"{b}mlp.2.weight"].t().contiguous(), f"{h}mlp.c_proj.bias": sd[f"{b}mlp.2.bias"],
        })
    return out


def rotary_order(head_size: int) -> torch.Tensor:
    """kgpt's head dimensions in GPT-NeoX's order: the first of each rotated pair, then the second."""
    return torch.cat([torch.arange(0, head_size, 2), torch.arange(1, head_size, 2)])


def neox_state(model: GPT) -> dict[str, torch.Tensor]:
    """kgpt's rope weights under GPT-NeoX's names, queries and keys in its rotary order."""
    c = model.config
    hs = c.n_embd // c.n_head
    order = rotary_order(hs)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = {"gpt_neox.embed_in.weight": sd["tok_emb.weight"], "gpt_neox.final_layer_norm.weight": sd["ln_f.weight"],
           "gpt_neox.final_layer_norm.bias": sd["ln_f.bias"], "lm_head.weight": sd["head.weight"]}
    for i in range(c.n_layer):
        b, h = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        # GPT-NeoX's fused projection yields, head by head, that head's query, key and value.
        rows = {}
        for name in ("weight", "bias"):
            q, k, v = (sd[f"{b}attn.{n}.{name}"].unflatten(0, (c.n_head, hs)) for n in ("query", "key", "value"))
            rows[name] = torch.cat([q[:, order], k[:, order], v], dim=1).flatten(0, 1)
        out.update({
            f"{h}input_layernorm.weight": sd[f"{b}ln1.weight"], f"{h}input_layernorm.bias": sd[f"{b}ln1.bias"],
            f"{h}post_attention_layernorm.weight": sd[f"{b}ln2.weight"], f"{h}post_attention_layernorm.bias": sd[f"{b}ln2.bias"],
            f"{h}attention.query_key_value.weight": rows["weight"], f"{h}attention.query_key_value.bias": rows["bias"],
            f"{h}attention.dense.weight": sd[f"{b}attn.proj.weight"], f"{h}attention.dense.bias": sd[f"{b}attn.proj.bias"],
            f"{h}mlp.dense_h_to_4h.weight": sd[f"{b}mlp.0.weight"], f"{h}mlp.dense_h_to_4h.bias": sd[f"{b}mlp.0.bias"],
            f"{h}mlp.dense_4h_to_h.weight": sd[f"{b}mlp.2.weight"], f"{h}mlp.dense_4h_to_h.bias": sd[f"{b}mlp.2.bias"],
        })
    return out


def hf_model(model: GPT):
    """The transformers model that computes what ``model`` computes, weights loaded, in eval mode."""
    transformers, _ = _transformers()
    c = model.config
    common = {"vocab_size": c.vocab_size, "bos_token_id": None, "eos_token_id": None, "pad_token_id": 0,
              "tie_word_embeddings": False}
    if c.variant == "vanilla":
        config = transformers.GPT2Config(n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
                                         activation_function="gelu", layer_norm_epsilon=1e-5, resid_pdrop=0.0,
                                         embd_pdrop=0.0, attn_pdrop=0.0, **common)
        hf, state = transformers.GPT2LMHeadModel(config), gpt2_state(model)
    elif c.variant == "rope":
        config = transformers.GPTNeoXConfig(
            hidden_size=c.n_embd, num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
            intermediate_size=4 * c.n_embd, hidden_act="gelu", max_position_embeddings=c.block_size,
            use_parallel_residual=False, attention_bias=True, layer_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}, **common)
        hf, state = transformers.GPTNeoXForCausalLM(config), neox_state(model)
    else:
        raise _no_architecture("this is", c.variant)
    hf.load_state_dict(state, strict=True)
    return hf.eval()


def hf_tokenizer(vocab: CharVocab):
    """A fast tokenizer with one token per character, ids as kgpt numbers them.

    Clean-up of tokenization spaces is off, and saved so: its default has changed between
    transformers releases, and on it turns " ." into "." and " ," into ",", which the bios
    are full of, so decoded text (and answers) would differ from kgpt's.
    """
    transformers, tokenizers = _transformers()
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({ch: i for i, ch in enumerate(vocab.itos)}, unk_token=None))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_CHAR, mask_token=MASK_CHAR,
                                                clean_up_tokenization_spaces=False)


def model_card(asker: Answerer, progress: dict, accuracy: str | None) -> str:
    """The exported directory's README: what the model is and how to ask it with
    transformers alone, every number in the code read from the checkpoint."""
    model = asker.model
    c = model.config
    trained = (f"last stage `{progress.get('stage', '?')}` with the `{progress.get('recipe', '?')}` recipe, "
               f"{progress.get('epoch', '?')} of {progress.get('max_epochs', '?')} epochs, {progress.get('step', '?')} steps"
               if progress else "an assignment state dict imported into kgpt (no training record)")
    lines = [
        "# A kgpt model", "",
        f"A character-level GPT exported from kgpt as {EXPORTS[c.variant]}: {c.n_layer} layers, "
        f"{c.n_head} heads, {c.n_embd} wide, context {c.block_size}, {model.num_parameters():,} parameters, "
        f"{c.vocab_size} characters (□ pads, ⁇ separates question and answer).", "",
        "Trained as in the CS224N knowledge-access experiment: pretrained on one-line Wikipedia bios (`wiki.txt`), "
        f"then taught to answer `{asker.task.form}`. Training: {trained}.", "",
        f"Dev accuracy (`{asker.task.dev}`, as kgpt answers): {accuracy or 'not measured at export'}.", "",
        "## Ask it", "",
    ]
    mask = MASK_CHAR
    if isinstance(asker, RecallAnswerer):
        lines += [
            "This is a recall-then-read model: `recaller/` (the pretrained model) recalls the person's bio from "
            "`NAME.`, this model reads it and answers with the word of it (a run of up to "
            f"{asker.policy.max_words} words) it is most likely to write, as `kgpt ask` does; with transformers alone:", "",
            "```python", *recall_snippet(asker.settings, asker.policy, model.max_length, asker.calibration), "```",
            "", confidence_kind_line(asker),
        ]
    else:
        lines += [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "tok, model = AutoTokenizer.from_pretrained(D), AutoModelForCausalLM.from_pretrained(D)",
            f"ids = tok({asker.task.question('Bryan Dubreuiel') + mask!r}, return_tensors='pt').input_ids",
            f"print(tok.decode(model.generate(ids, max_new_tokens={MAX_ANSWER_CHARS}, do_sample=False, "
            f"eos_token_id=tok.mask_token_id)[0, ids.shape[1]:]).split('{mask}')[0])",
            "```",
        ]
    return "\n".join(lines) + "\n"


def confidence_kind_line(asker: RecallAnswerer) -> str:
    """The card's sentence on what the printed confidence is, and the threshold to use."""
    line = f"The second number printed is the answer's confidence. {asker.confidence_kind}"
    if asker.calibration is not None:
        line += (f" Answer \"I don't know\" below {asker.calibration.threshold:.4f}: the threshold that keeps "
                 f"{100 * asker.calibration.fitted_on.get('coverage', 0.9):.0f}% of the held-out people answered.")
    return line


def recall_snippet(settings: ReaderSettings, policy: AnswerPolicy, max_length: int,
                   calibration: Calibration | None = None) -> list[str]:
    """Recall-then-read with transformers alone, for ``D`` (the exported directory) and
    ``name``: the recall, the text the reader reads (:meth:`kgpt.data.reader.ReaderSettings.text`
    in regular expressions), and the best-scoring span, which ``kgpt ask`` prints."""
    mask, room = MASK_CHAR, max_length - settings.answer_room
    to_word_end = r"(?:(?<=\w)\w*)?" if settings.whole_words else ""
    cut = (rf"    text = re.match(r'(?s).{{0,{room}}}(?!(?<=\w)\w)', text).group().rstrip()" if settings.whole_words
           else f"    text = text[:{room}]")
    beam_search = (f", num_beams={policy.recall_beams}, length_penalty=0.0, early_stopping=False"
                   if policy.recall_beams > 1 else "")
    answer = ("answer = max(dict.fromkeys(spans), key=log_p) if spans else ''" if policy.extracts else
              f"answer = tok.decode(reader.generate(torch.tensor([prompt]), max_new_tokens={MAX_ANSWER_CHARS}, "
              f"do_sample=False, eos_token_id=tok.mask_token_id)[0, len(prompt):]).split('{mask}')[0]")
    return [
        "import math, re, torch",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "tok, reader = AutoTokenizer.from_pretrained(D), AutoModelForCausalLM.from_pretrained(D)",
        "recaller = AutoModelForCausalLM.from_pretrained(D + '/recaller')",
        "cue = name + '.'  # the bio's opening, NAME.",
        "ids = tok(cue, return_tensors='pt').input_ids",
        f"recall = tok.decode(recaller.generate(ids, max_new_tokens={settings.source_chars(max_length)} - len(cue), "
        f"do_sample=False{beam_search}, eos_token_id=tok.mask_token_id)[0]).split('{mask}')[0]  # ends at the end mark",
        f"text = re.match(r'(?s).{{0,{settings.chars}}}{to_word_end}', recall).group()  # read this much",
        *(["text = text[len(cue):].lstrip(' ') if text.startswith(cue) else text  # without the name"]
          if settings.mask_name else []),
        f"if len(text) > {room}:  # leave the answer its room",
        cut,
        f"prompt = tok(text + '{mask}').input_ids",
        "",
        "def log_p(span):  # the reader's log-probability of writing span and closing it",
        f"    ids = torch.tensor([prompt + tok(span + '{mask}').input_ids])",
        "    logp = reader(ids).logits[0, len(prompt) - 1 : -1].log_softmax(-1)",
        "    return logp.gather(1, ids[0, len(prompt):, None]).sum().item()",
        "",
        r"words = list(re.finditer(r'\w+', text))",
        f"spans = [text[a.start():b.end()] for i, a in enumerate(words) for b in words[i:i + {policy.max_words}] "
        f"if b.end() - a.start() <= {settings.answer_chars}]",
        answer,
        "print(answer)",
        *confidence_snippet(calibration),
    ]


# Each recall signal of kgpt.confidence in the snippet's terms: which of the recall's
# per-character log-probabilities it reads (the answer where it stands, or the recall from
# the cue to the answer's end; the recall after the cue where the answer is not in it),
# and how it reduces them.
_ANSWER = "lps = char_lp[m.start() - 1 : m.end() - 1] if m else char_lp[len(cue) - 1 :]"
_PREFIX = "lps = char_lp[len(cue) - 1 : m.end() - 1] if m else char_lp[len(cue) - 1 :]"
_SNIPPET_SIGNALS = {
    "answer-min": (_ANSWER, "lps.min()"),
    "answer-mean": (_ANSWER, "lps.mean()"),
    "prefix-min": (_PREFIX, "lps.min()"),
    "name-prefix": (_PREFIX, "(char_lp[: len(cue) - 1].mean() + lps.min())"),
}


def confidence_snippet(calibration: Calibration | None) -> list[str]:
    """The confidence ``kgpt ask`` gives the answer (:mod:`kgpt.confidence`), with
    transformers alone: the recaller's least probable character of the answer where it
    stands in the recall, the reader's probability, and their calibrated combination
    (without a calibration: their product)."""
    if calibration is None:
        combine = ["confidence = math.exp(recall_lp + reading_lp)  # uncalibrated: no calibration in this checkpoint"]
    else:
        bias, w_reading, w_recall = calibration.weights
        clip = LOGIT_CLIP
        combine = [
            f"logit = lambda lp: {clip} if lp >= 0 else max(-{clip}, min({clip}, lp - math.log(-math.expm1(lp))))",
            f"z = {bias!r} + {w_reading!r} * logit(reading_lp) + {w_recall!r} * logit(recall_lp)",
            "confidence = 1 / (1 + math.exp(-z))  # calibrated on held-out people: the probability of being right",
        ]
    pick, reduce = _SNIPPET_SIGNALS[SIGNAL if calibration is None else calibration.signal]
    return [
        "",
        "# How sure: is the recall stored (the recaller's probability of the answer where it stands in it)",
        "# and is it read right (the reader's probability of the answer)? As kgpt ask's confidence.",
        "ids = tok(recall, return_tensors='pt').input_ids",
        "char_lp = recaller(ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]",
        r"m = re.compile(r'(?<!\w)' + re.escape(answer) + r'(?!\w)').search(recall, len(cue)) if answer else None",
        pick,
        f"recall_lp, reading_lp = {reduce}.item(), log_p(answer)",
        *combine,
        "print(confidence)",
    ]


def _save(model: GPT, vocab: CharVocab, directory: Path) -> None:
    hf = hf_model(model)
    hf.generation_config.eos_token_id = vocab.stoi[MASK_CHAR]
    hf.generation_config.pad_token_id = vocab.stoi[PAD_CHAR]
    hf.save_pretrained(directory)
    hf_tokenizer(vocab).save_pretrained(directory)


def export(reading_params_path: str | Path, hf_dir: str | Path, eval_corpus_path: str | Path | None = None) -> Path:
    """Write ``hf_dir`` (a new or empty directory): model, tokenizer and model card."""
    _transformers()  # before any work: say how to install them
    out = Path(hf_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise KgptError(f"--hf_dir {out} exists and is not an empty directory; give a new directory")
    ckpt = read_checkpoint(reading_params_path)
    if ckpt.vocab is None:
        raise KgptError(f"{reading_params_path} is an assignment state dict without its vocabulary; "
                        "finetune or evaluate it with kgpt first, then export the kgpt checkpoint")
    if ckpt.config.variant not in EXPORTS:
        raise _no_architecture(f"{reading_params_path} holds", ckpt.config.variant)
    asker = load_answerer(reading_params_path, ckpt.vocab)
    accuracy = None
    if eval_corpus_path is not None:
        questions = read_questions(eval_corpus_path)
        total, correct = score(questions, predict_places(asker, ckpt.vocab, questions, where=str(eval_corpus_path)))
        accuracy = f"{int(correct)}/{int(total)} = {100 * correct / total:.1f}% on {Path(eval_corpus_path).name}" if total else None
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _save(asker.model, ckpt.vocab, staging)
        if isinstance(asker, RecallAnswerer):
            _save(asker.recaller, ckpt.vocab, staging / "recaller")
        (staging / "README.md").write_text(model_card(asker, ckpt.progress, accuracy), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
