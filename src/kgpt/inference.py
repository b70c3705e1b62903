"""Greedy decoding of many prompts at once, with a KV cache.

The reference code answers one question at a time and recomputes the whole prefix for
every new character. Here all prompts advance together, one position per step: a row
still inside its prompt is fed its next prompt character (teacher forcing), a row past
it is fed its own last prediction. Because the model is causal, every row sees exactly
what naive one-at-a-time decoding would show it, so the predictions are identical; with
the KV cache each step costs one position, not the whole prefix. Rows stop at their
``stop_id`` (the closing ⁇); decoding ends when every row has stopped.

Beside the decoder, a beam search on the same KV cache (:func:`beam_decode`, the recall's),
the model's probability of given answers (:func:`answer_log_probs`, the confidence ``kgpt
ask`` and the analysis report) and its k most probable answers (:func:`top_answers`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

import torch

from kgpt.model import GPT
from kgpt.vocab import MASK_ID, PAD_ID


# Rows decoded together. The KV cache holds every row's positions, so the batch sets the
# memory. On a 2-core CPU, trained models answer as fast 128 rows at a time as 256 in
# about 140 MiB less (benchmarks/decode_cache.py, docs/RESULTS.md); a GPU needs the big
# batch to be busy.
DECODE_BATCH = {"cuda": 1024}
DECODE_BATCH_ELSEWHERE = 128


@torch.no_grad()
def greedy_decode(
    model: GPT,
    prompts: list[list[int]],
    max_new_tokens: int = 32,
    stop_id: int = MASK_ID,
    batch_size: int | None = None,
) -> list[list[int]]:
    """For each prompt, the greedily generated ids up to (not including) ``stop_id``;
    ``batch_size`` rows at a time (default: :data:`DECODE_BATCH` for the model's device)."""
    if batch_size is None:
        device = next(model.parameters()).device.type
        batch_size = DECODE_BATCH.get(device, DECODE_BATCH_ELSEWHERE)
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch_size):
        out.extend(_decode_batch(model, prompts[i : i + batch_size], max_new_tokens, stop_id))
    return out


def _decode_batch(model: GPT, prompts: list[list[int]], max_new_tokens: int, stop_id: int) -> list[list[int]]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    B = len(prompts)
    plen = torch.tensor([len(p) for p in prompts], device=device)
    if plen.min().item() < 1:
        raise ValueError("every prompt needs at least one character")
    # Each row may generate until max_new_tokens or the model's longest input.
    budget = torch.clamp(model.max_length - plen, max=max_new_tokens)
    total = int((plen + budget).max().item())
    tokens = torch.full((B, total), PAD_ID, dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        tokens[r, : len(p)] = torch.tensor(p, dtype=torch.long)
    done = budget <= 0
    start = int(plen.min().item())
    cache = model.new_cache(total) if model.supports_kv_cache else None
    logits = model(tokens[:, :start], cache=cache)[0][:, -1] if cache is not None else None
    t = start
    while t < total and not bool(done.all()):
        if cache is None:  # recompute the prefix (the perceiver)
            logits = model(tokens[:, :t])[0][:, -1]
        generating = (t >= plen) & ~done
        guess = logits.argmax(dim=-1)
        tokens[:, t] = torch.where(generating, guess, tokens[:, t])
        done |= generating & ((guess == stop_id) | (t + 1 - plen >= budget))
        if cache is not None and t + 1 < total:
            logits = model(tokens[:, t : t + 1], cache=cache)[0][:, -1]
        t += 1
    model.train(was_training)
    result = []
    for r, p in enumerate(prompts):
        gen = tokens[r, len(p) : len(p) + int(budget[r])].tolist()
        result.append(gen[: gen.index(stop_id)] if stop_id in gen else gen)
    return result


@torch.no_grad()
def beam_decode(
    model: GPT, prompts: list[list[int]], max_new_tokens: int | list[int], beams: int, stop_id: int = MASK_ID,
    batch_size: int | None = None,
) -> list[list[int]]:
    """For each prompt, the continuation of highest total log-probability that a beam
    search of ``beams`` rows finds: up to (not including) ``stop_id``, or ``max_new_tokens``
    ids (one budget for all, or one per prompt; fewer where the block ends first).

    Greedy decoding commits to each character: one wrong character early in a long recall
    and the model goes on from a text it never saw. The beam keeps the ``beams`` most
    probable continuations at every step, so a slip that the following characters make
    improbable can be overtaken. It is the search of Hugging Face's ``generate(num_beams=
    beams, length_penalty=0.0, eos_token_id=stop_id)``, so an exported model decodes the
    same text: of the ``2 * beams`` best candidates of a step, those that write
    ``stop_id`` within the first ``beams`` are finished texts (their score: the text's and
    the stop's log-probability), and the best ``beams`` others go on. One beam is greedy.
    """
    if beams < 1:
        raise ValueError(f"beams must be at least 1, got {beams}")
    if not model.supports_kv_cache:
        raise ValueError("beam decoding needs a KV cache; the perceiver decodes greedily")
    if batch_size is None:
        device = next(model.parameters()).device.type
        batch_size = DECODE_BATCH.get(device, DECODE_BATCH_ELSEWHERE)
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    per = max(1, batch_size // beams)
    out: list[list[int]] = []
    for i in range(0, len(prompts), per):
        out.extend(_beam_batch(model, prompts[i : i + per], budgets[i : i + per], beams, stop_id))
    return out


def _beam_batch(model: GPT, prompts: list[list[int]], budgets: list[int], beams: int, stop_id: int) -> list[list[int]]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    B, W = len(prompts), beams
    plen = torch.tensor([len(p) for p in prompts], device=device)
    if plen.min().item() < 1:
        raise ValueError("every prompt needs at least one character")
    budget = torch.clamp(model.max_length - plen, max=torch.tensor(budgets, device=device))
    total = int((plen + budget).max().item())
    tokens = torch.full((B * W, total), PAD_ID, dtype=torch.long, device=device)  # prompt b's beams: rows bW..bW+W-1
    for b, p in enumerate(prompts):
        tokens[b * W : (b + 1) * W, : len(p)] = torch.tensor(p, dtype=torch.long)
    # The W rows of a prompt are one text until it is expanded: only the first may be.
    score = torch.full((B, W), -math.inf, device=device)
    score[:, 0] = 0.0
    done_score = torch.full((B,), -math.inf, device=device)  # the best finished text so far
    done_tokens = torch.full((B, total), PAD_ID, dtype=torch.long, device=device)
    own = torch.arange(W, device=device).expand(B, W)
    rank = torch.arange(2 * W, device=device).expand(B, 2 * W)
    first_row = (torch.arange(B, device=device) * W).unsqueeze(1)
    start = int(plen.min().item())
    cache = model.new_cache(total)
    logits = model(tokens[:, :start], cache=cache)[0][:, -1]
    for t in range(start, total):
        expanding = ((t >= plen) & (t < plen + budget)).unsqueeze(1)
        if bool(expanding.any()):
            logp = torch.log_softmax(logits.float(), dim=-1).view(B, W, -1)
            vocab = logp.shape[-1]
            top, at = (score.unsqueeze(-1) + logp).view(B, -1).topk(min(2 * W, W * vocab), dim=-1)
            stops = at % vocab == stop_id
            # A stop among the first W candidates finishes a text: keep the best one.
            finishing = stops & (rank[:, : top.shape[1]] < W) & expanding
            first = finishing.int().argmax(dim=1, keepdim=True)  # candidates are sorted: the first is the best
            candidate = torch.where(finishing.any(dim=1, keepdim=True), top.gather(1, first), -math.inf).squeeze(1)
            better = candidate > done_score
            if bool(better.any()):
                done_score = torch.where(better, candidate, done_score)
                from_row = first_row.squeeze(1) + (at.gather(1, first).squeeze(1) // vocab)
                done_tokens[better] = tokens[from_row[better]]
                done_tokens[better, t] = stop_id
            # The best W candidates that do not stop go on.
            going = (rank[:, : top.shape[1]] + 2 * W * stops.long()).argsort(dim=1)[:, :W]
            score = torch.where(expanding, top.gather(1, going), score)
            picked = at.gather(1, going)
            source = torch.where(expanding, picked // vocab, own)
            rows = (first_row + source).view(-1)
            tokens = tokens.index_select(0, rows)
            tokens[:, t] = torch.where(expanding, picked % vocab, tokens[:, t].view(B, W)).view(-1)
            cache = [c.take(rows) for c in cache]
        if t + 1 < total:
            logits = model(tokens[:, t : t + 1], cache=cache)[0][:, -1]
    model.train(was_training)
    best, winner = score.max(dim=1)
    out = []
    for b, p in enumerate(prompts):
        row = done_tokens[b] if done_score[b] > best[b] else tokens[b * W + int(winner[b])]
        gen = row[len(p) : len(p) + int(budget[b])].tolist()
        out.append(gen[: gen.index(stop_id)] if stop_id in gen else gen)
    return out


@torch.no_grad()
def _last_log_probs(model: GPT, rows: list[list[int]]) -> torch.Tensor:
    """log p(next id | row) for each row, in one right-padded forward pass.

    Padding after a row cannot change its last position's output: every variant is causal.
    """
    device = next(model.parameters()).device
    x = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long, device=device)
    for r, ids in enumerate(rows):
        x[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    last = torch.tensor([len(ids) - 1 for ids in rows], device=device)
    logits = model(x)[0][torch.arange(len(rows), device=device), last]
    return torch.log_softmax(logits.float(), dim=-1).cpu()


@torch.no_grad()
def answer_log_probs(
    model: GPT, prompts: list[list[int]], answers: list[list[int]], stop_id: int = MASK_ID, batch_size: int = 256
) -> list[float]:
    """log p(answer, then ``stop_id`` | prompt) for each pair, the model in eval mode.

    The confidence of an answer is the probability that the model, given the prompt,
    writes exactly that answer and closes it: the product of p(char | prefix) over the
    answer's characters and the closing ⁇. One teacher-forced forward pass over
    ``prompt + answer`` gives every factor at once (right-padded rows, which causality
    makes safe), so a batch of answers costs one pass and works for every variant,
    the perceiver included. An answer must leave its closing ⁇ a place in the block:
    ``len(prompt) + len(answer) <= model.max_length``, which greedy answers always do.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    for i in range(0, len(prompts), batch_size):
        pairs = list(zip(prompts[i : i + batch_size], answers[i : i + batch_size]))
        if any(not p or len(p) + len(a) > model.max_length for p, a in pairs):
            raise ValueError("every prompt needs a character, and prompt + answer must fit the model's block")
        width = max(len(p) + len(a) for p, a in pairs)
        x = torch.full((len(pairs), width), PAD_ID, dtype=torch.long)
        targets = torch.full((len(pairs), width), -1, dtype=torch.long)  # -1: not scored
        for r, (p, a) in enumerate(pairs):
            x[r, : len(p) + len(a)] = torch.tensor(p + a, dtype=torch.long)
            # position t predicts id t + 1: the answer's characters, then the stop id
            targets[r, len(p) - 1 : len(p) + len(a)] = torch.tensor(a + [stop_id], dtype=torch.long)
        logp = torch.log_softmax(model(x.to(device))[0].float(), dim=-1).cpu()
        scored = targets >= 0
        picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1).double()
        out.extend((picked * scored).sum(dim=1).tolist())
    model.train(was_training)
    return out


@torch.no_grad()
def continuation_log_probs(
    model: GPT, prompts: list[list[int]], continuations: list[list[list[int]]], stop_id: int = MASK_ID,
    rows: int = 256,
) -> list[list[float]]:
    """For each prompt, log p(c, then ``stop_id`` | prompt) of each of its continuations c:
    the exact scores of :func:`answer_log_probs`, for many answers to one prompt.

    Each prompt is read once. Prompts of one length go through the model together with a
    KV cache, the cache is copied to one row per continuation, and the continuations of
    up to ``rows`` rows are scored in one pass, right-padded (causality makes padding
    safe). A span answer is about 8 characters after a 90-character text, so this costs
    a little more than reading the texts, where scoring each continuation on its own
    full row would cost as many reads of the text as there are candidates. The perceiver
    keeps no cache and scores full rows.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts for {len(continuations)} lists of continuations")
    if not model.supports_kv_cache:
        flat = [(p, c) for p, cs in zip(prompts, continuations) for c in cs]
        scores = iter(answer_log_probs(model, [p for p, _ in flat], [c for _, c in flat], stop_id))
        return [[next(scores) for _ in cs] for cs in continuations]
    out: list[list[float]] = [[] for _ in prompts]
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError("every prompt needs at least one character")
        if continuations[i]:
            by_length.setdefault(len(p), []).append(i)
    was_training = model.training
    model.eval()
    for group in by_length.values():
        for batch in _batches(group, [len(continuations[i]) for i in group], rows):
            scored = _score_continuations(model, [prompts[i] for i in batch], [continuations[i] for i in batch], stop_id)
            for i, scores in zip(batch, scored):
                out[i] = scores
    model.train(was_training)
    return out


def _batches(items: list[int], sizes: list[int], rows: int) -> Iterator[list[int]]:
    """``items`` in order, in consecutive batches whose sizes add up to at most ``rows``
    (an item larger than that is a batch of its own)."""
    batch: list[int] = []
    total = 0
    for item, size in zip(items, sizes):
        if batch and total + size > rows:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch


def _score_continuations(model: GPT, prompts: list[list[int]], continuations: list[list[list[int]]], stop_id: int) -> list[list[float]]:
    """:func:`continuation_log_probs` for prompts of one length, in one batch."""
    device = next(model.parameters()).device
    owner = [r for r, cs in enumerate(continuations) for _ in cs]
    flat = [c for cs in continuations for c in cs]
    longest = max(map(len, flat))
    if len(prompts[0]) + longest > model.max_length:
        raise ValueError("prompt + continuation must fit the model's block")
    cache = model.new_cache(len(prompts[0]) + longest)
    first = model(torch.tensor(prompts, dtype=torch.long, device=device), cache=cache)[0][:, -1]
    index = torch.tensor(owner, device=device)
    logp = torch.log_softmax(first.float(), dim=-1).index_select(0, index).unsqueeze(1)  # predicts each c[0]
    x = torch.full((len(flat), longest), PAD_ID, dtype=torch.long)
    targets = torch.full((len(flat), longest + 1), -1, dtype=torch.long)  # -1: not scored
    for r, c in enumerate(flat):
        x[r, : len(c)] = torch.tensor(c, dtype=torch.long)
        targets[r, : len(c) + 1] = torch.tensor(c + [stop_id], dtype=torch.long)
    if longest:
        later = torch.log_softmax(model(x.to(device), cache=[c.take(index) for c in cache])[0].float(), dim=-1)
        logp = torch.cat((logp, later), dim=1)
    scored = targets >= 0
    picked = logp.cpu().gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1).double()
    scores = (picked * scored).sum(dim=1).tolist()
    grouped: list[list[float]] = [[] for _ in prompts]
    for r, s in zip(owner, scores):
        grouped[r].append(s)
    return grouped


@torch.no_grad()
def top_answers(
    model: GPT,
    prompt: list[int],
    k: int = 3,
    max_new_tokens: int = 32,
    stop_id: int = MASK_ID,
    batch_size: int = 64,
    max_expansions: int = 4096,
) -> list[tuple[list[int], float]]:
    """The ``k`` most probable answers to one prompt, as ``(ids, log p)``, most probable first.

    An answer is any string of ids closed by ``stop_id``; its probability is the one
    :func:`answer_log_probs` gives it. Why best-first search rather than sampling or a
    plain beam: extending an answer can only lower its probability, so a search that
    always expands the most probable unfinished prefix meets the complete answers in
    order of probability. What it returns is therefore exactly the k most probable
    answers (a beam of width k can miss one whose prefix fell out of the beam), with
    exact probabilities, and deterministically (sampling would give estimates that
    change from run to run). A prefix less probable than k answers already seen is
    dropped: none of its completions could enter the top k.

    The search stops after ``max_expansions`` prefixes (a model spreading its probability
    very thinly over long answers); it then returns the answers found so far, which are
    still the most probable ones, only fewer than k.
    """
    if not prompt:
        raise ValueError("the prompt needs at least one character")
    was_training = model.training
    model.eval()
    room = min(max_new_tokens, model.max_length - len(prompt))  # answer characters that fit
    frontier: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]  # (-log p, ids), complete if ids end in stop_id
    best: list[float] = []  # log p of the k most probable complete answers seen so far (a min-heap)
    found: list[tuple[list[int], float]] = []
    expanded = 0

    def complete(node: tuple[float, tuple[int, ...]]) -> bool:
        return bool(node[1]) and node[1][-1] == stop_id

    def bound() -> float:
        return best[0] if len(best) == k else -math.inf

    while frontier and len(found) < k:
        if complete(frontier[0]):  # nothing left is more probable: it is the next answer
            neg, ids = heapq.heappop(frontier)
            found.append((list(ids[:-1]), -neg))
            continue
        if expanded >= max_expansions:
            break
        batch = []
        while frontier and len(batch) < batch_size and not complete(frontier[0]):
            node = heapq.heappop(frontier)
            if -node[0] >= bound():
                batch.append(node)
        if not batch:
            continue
        expanded += len(batch)
        rows = _last_log_probs(model, [prompt + list(ids) for _, ids in batch]).double()
        for (neg, ids), row in zip(batch, rows):
            closed = -neg + row[stop_id].item()
            if closed >= bound():
                heapq.heappush(frontier, (-closed, ids + (stop_id,)))
                if len(best) < k:
                    heapq.heappush(best, closed)
                else:
                    heapq.heappushpop(best, closed)
            if len(ids) >= room:
                continue
            scores = -neg + row
            scores[stop_id] = -math.inf
            for t in torch.nonzero(scores >= bound()).flatten().tolist():
                heapq.heappush(frontier, (-scores[t].item(), ids + (t,)))
    model.train(was_training)
    return found


@torch.no_grad()
def token_log_probs(model: GPT, rows: list[list[int]], batch_size: int = 128) -> list[list[float]]:
    """For each row of ids, log p(row[t] | row[:t]) for t = 1 .. len(row) - 1, the model in
    eval mode: how probable the model finds each character of a text where it stands.

    One teacher-forced pass per batch (right-padded rows, which causality makes safe).
    The confidence of a recall (:mod:`kgpt.confidence`) reads the recaller's probability
    of the characters it recalled this way, with no decoding again.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[list[float]] = []
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        if any(not 1 <= len(r) <= model.max_length for r in batch):
            raise ValueError("every row needs at least one id and must fit the model's block")
        width = max(map(len, batch))
        x = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
        for r, ids in enumerate(batch):
            x[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        logp = torch.log_softmax(model(x.to(device))[0].float(), dim=-1).cpu()
        picked = logp[:, :-1].gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1).double()
        out.extend(picked[r, : len(ids) - 1].tolist() for r, ids in enumerate(batch))
    model.train(was_training)
    return out
