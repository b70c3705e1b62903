# Round NAME (docs/results/2026-12-03-rules.md): extraction without the spans made only of words of the person's
# name (words after "of" in the name kept), measured on the top 5 spans each reader ranked
# (2026-12-03-reader-validation-ranks.py: the 400 validation people, the BEAM8 recaller's beam-4 recalls and their
# true bios). An answer whose top 5 are all name words counts as wrong here.
# python 2026-12-03-name-words-probe.py RANKS.json
import json, re, sys
def name_words(name):
    ws = re.findall(r"\w+", name)
    return {w for i, w in enumerate(ws) if not (i > 0 and ws[i - 1] == "of")}
for reader, rows in json.load(open(sys.argv[1])).items():
    res = {}
    for kind in ("recall", "true"):
        rs = [o for o in rows if o["kind"] == kind]
        base = sum(bool(o["top"]) and o["top"][0][0] == o["gold"] for o in rs)
        filt = 0
        for o in rs:
            keep = [a for a, _ in o["top"] if not set(re.findall(r"\w+", a)) <= name_words(o["name"])]
            filt += (keep[0] if keep else "") == o["gold"]
        res[kind] = (base, filt)
    print(json.dumps({"reader": reader, **{f"{k}_right": v[0] for k, v in res.items()},
                      **{f"{k}_right_without_name_words": v[1] for k, v in res.items()}}))
