"""Reference answers the generation budget cannot reach: a warning before anything runs.

A task's answer is generated in at most `eval.max_new_tokens` tokens of the cell's LLM (a caption task: at least
24). A reference answer that needs more tokens cannot be produced: such a question scores 0 whatever the model
learned. `warnings(cells)` measures, per LLM and evaluation, the share of each task's questions none of whose
reference answers fits (a custom task: its first `limit` questions; an embedded task: its possible answers, the
world's words, colours, shapes, counts and positions, since its question file exists only once the world is built)
and names the longest. The LLM's tokenizer is read where it is at hand without building anything: a zoo LLM's shipped
folder, an `hf:` local folder; otherwise the check is skipped.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

CAPTION_TASKS = ("world_caption",)


def answer_tokens(tokenizer, answer: str) -> int:
    """Tokens the LLM generates for `answer` after its prompt (written after one space, as in training)."""
    return len(tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"])


def long_answers(tokenizer, answers: list[list[str]], budget: int) -> tuple[float, str, int]:
    """(the share of questions none of whose references fits in `budget` tokens, the longest reference, its
    tokens). A question fits when its shortest reference does."""
    if not answers:
        return 0.0, "", 0
    shortest = [min(answer_tokens(tokenizer, a) for a in refs) if refs else 0 for refs in answers]
    longest_text, longest = max(((a, answer_tokens(tokenizer, a)) for refs in answers for a in refs),
                                key=lambda x: x[1], default=("", 0))
    return sum(n > budget for n in shortest) / len(answers), longest_text, longest


def world_answers(task: str, n_words: int) -> list[list[str]] | None:
    """The possible answers of an embedded task, one list of references each (None: not a short-answer task)."""
    from ablate.world import vocab

    if task == "world_textvqa":
        return [[w] for w in vocab.words(n_words)]
    if task == "world_vqa":
        counts = [[str(k), w] for k, w in vocab.NUMBER_WORDS.items()]
        return [[c] for c in vocab.COLOURS] + [[s] for s in vocab.SHAPES] + [[p] for p in vocab.POSITIONS] + counts
    return None


def custom_answers(custom, limit: int | None) -> list[list[str]] | None:
    from ablate.data.vqa import as_answers, load_records  # lazy: datasets

    path = Path(custom.path).expanduser()
    if custom.metric == "cider" or not path.is_file():
        return None
    records = load_records(str(path))
    if getattr(custom, "format", "vqa") == "conversation":   # one reference: the last assistant turn
        from ablate.data.conversation import context_and_reference, read_record

        read = [read_record(r, custom.conversations_column, custom.image_column) for r in records]
        references = [[ref] for r in read if r is not None and (ref := context_and_reference(r[0])[1])]
        return references[:limit] if limit else references
    return [as_answers(r.get(custom.answers_column)) for r in (records[:limit] if limit else records)]


class _FastTokenizer:
    """A `tokenizer.json` read with the `tokenizers` library alone (a dry run loads no transformers), called as a
    transformers tokenizer is: `tok(text, add_special_tokens=False)["input_ids"]`."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer  # lazy: the Rust tokenizers, without transformers

        self.tokenizer = Tokenizer.from_file(str(path))

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}


def _tokenizer(llm_name: str):
    """The LLM's tokenizer where it is at hand without building anything (its `tokenizer.json`), else None."""
    try:
        if llm_name.startswith("zoo:"):   # its shipped folder, named as `ablate.zoo.build.model_dir` names it
            from ablate.config.spec import zoo_name
            from ablate.zoo import shipping
            from ablate.zoo.recipes import recipe_for, recipe_hash, world_identity

            recipe = recipe_for(zoo_name(llm_name))
            folder = shipping.find(f"{zoo_name(llm_name)}-{recipe_hash(recipe, world_identity(recipe.world))}")
        else:
            folder = Path(llm_name.removeprefix("hf:")).expanduser()
        if folder is None or not (Path(folder) / "tokenizer.json").is_file():
            return None
        return _FastTokenizer(Path(folder) / "tokenizer.json")
    except Exception as err:  # noqa: BLE001 - a warning is never worth refusing a grid for
        log.info("generation budget not checked for %s (%s: %s)", llm_name, type(err).__name__, err)
        return None


def cell_warnings(config, tokenizer) -> list[str]:
    """The warnings of one cell's evaluation (`config`: a CellConfig) with its LLM's tokenizer."""
    cfg = config.eval
    customs = {c.name: c for c in cfg.custom_tasks}
    out = []
    for task in cfg.tasks:
        if task in CAPTION_TASKS:
            continue
        if task in customs:
            answers, what = custom_answers(customs[task], cfg.limit), "reference answers"
        else:
            answers, what = world_answers(task, config.data.world.n_words), "possible answers"
        if not answers:
            continue
        share, longest_text, longest = long_answers(tokenizer, answers, cfg.max_new_tokens)
        if share > 0:
            out.append(f"eval.max_new_tokens = {cfg.max_new_tokens}: {100 * share:.0f} % of {task}'s {what} need "
                       f"more tokens of {config.llm.name} (the longest, “{longest_text}”, {longest}); those "
                       f"questions score 0 whatever the model learned: raise eval.max_new_tokens to {longest}")
    return out


def warnings(cells) -> list[str]:
    """The generation-budget warnings of a grid's cells, once per (LLM, evaluation, world)."""
    seen, out = set(), []
    for cell in cells:
        config = cell.config
        key = (config.llm.name, config.eval.model_dump_json(), config.data.world.n_words)
        if key in seen:
            continue
        seen.add(key)
        tokenizer = _tokenizer(config.llm.name)
        if tokenizer is not None:
            out += [w for w in cell_warnings(config, tokenizer) if w not in out]
    return out
