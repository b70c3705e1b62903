"""Where a recall loses the place, on validation (no dev label read): the 400 validation people of
benchmarks/recall_proxy.py, recalled by the recaller inside a reader's checkpoint.

For a beam of W, whether the place is in the text read of the first of the final beams, and of any of them
(the search's own n-best: the W rows it ends with, and its best finished text). For a greedy recall, where
each recall that lost the place first departs from the person's true bio: before the place (a slip, such as a
date it did not store), or at the place itself.

    python docs/results/2026-12-03-recall-slips.py READER.params [W]     (from the repository's root)
"""
import inspect, json, math, sys, textwrap
sys.path.insert(0, "benchmarks")
import torch
from knowledge_proxy import DATA, split
from kgpt import inference, pipeline
from kgpt.answering import load_answerer
from kgpt.data.corpus import bios_by_name, person_bio, read_questions
from kgpt.data.knowledge import END_OF_BIO
from kgpt.data.words import contains_place
from kgpt.recaller import recall, recall_cue

# kgpt's beam search, ending with every final row and the best finished text instead of the best one alone.
src = inspect.getsource(inference._beam_batch).replace("def _beam_batch(", "def _beam_rows(")
tail = src[src.index("    best, winner = score.max(dim=1)"):]
src = src.replace(tail, textwrap.indent(textwrap.dedent("""\
    out = []
    for b, p in enumerate(prompts):
        rows = [(float(score[b, w]), tokens[b * W + w]) for w in range(W)]
        if done_score[b] > -math.inf:
            rows.append((float(done_score[b]), done_tokens[b]))
        rows.sort(key=lambda r: -r[0])
        gens = [row[len(p) : len(p) + int(budget[b])].tolist() for _, row in rows]
        out.append([g[: g.index(stop_id)] if stop_id in g else g for g in gens])
    return out
"""), "    "))
ns = dict(vars(inference))
exec(src, ns)

corpus = pipeline.Corpus.load(DATA / "wiki.txt")
vocab = corpus.vocab
val, _ = split(read_questions(DATA / "birth_places_train.tsv", require_answers=True))
bios = bios_by_name(corpus.documents)
asker = load_answerer(sys.argv[1], vocab)
W = int(sys.argv[2]) if len(sys.argv) > 2 else 4
chars, width = asker.recall_chars, asker.model.max_length
names = sorted({q.name for q in val})
cues = [recall_cue(n) for n in names]
with torch.no_grad():
    beams, greedy = [], recall(asker.recaller, vocab, names, chars)
    for i in range(0, len(names), 32):
        beams += ns["_beam_rows"](asker.recaller, [vocab.encode(c) for c in cues[i : i + 32]],
                                  [max(1, chars - len(c)) for c in cues[i : i + 32]], W, END_OF_BIO)
beam_texts = {n: [(c + vocab.decode(g))[:chars] for g in rows] for n, c, rows in zip(names, cues, beams)}
greedy = dict(zip(names, greedy))


def where_lost(text: str, bio: str, place: str) -> str:
    """Where a recall that lost the place first departs from the true bio: before the place, or at it."""
    departs = next((i for i, (a, b) in enumerate(zip(text, bio)) if a != b), min(len(text), len(bio)))
    return "slip_before_place" if departs < bio.find(place) else "at_place"


row = {"reader": sys.argv[1], "beams": W, "people": len(val), "place_in_true_text": 0, "beam_first_holds": 0,
       "beam_any_holds": 0, "beam_lost": 0, "beam_lost_any_holds": 0, "beam_lost_slip_before_place": 0, "beam_lost_at_place": 0, "greedy_lost": 0,
       "greedy_lost_slip_before_place": 0, "greedy_lost_at_place": 0}
for q in val:
    bio = person_bio(bios, q.name, q.answer)
    if bio is None or not contains_place(asker.seen(bio, q.name), q.answer):
        continue
    row["place_in_true_text"] += 1
    holds = [contains_place(asker.settings.text(t, q.name, width), q.answer) for t in beam_texts[q.name]]
    row["beam_first_holds"] += holds[0]
    row["beam_any_holds"] += any(holds)
    row["beam_lost"] += not holds[0]
    row["beam_lost_any_holds"] += not holds[0] and any(holds)
    if not holds[0]:
        row["beam_lost_" + where_lost(beam_texts[q.name][0], bio, q.answer)] += 1
    if not contains_place(asker.settings.text(greedy[q.name], q.name, width), q.answer):
        row["greedy_lost"] += 1
        row["greedy_lost_" + where_lost(greedy[q.name], bio, q.answer)] += 1
print(json.dumps(row), flush=True)
