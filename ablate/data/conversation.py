"""Conversation data: LLaVA / ShareGPT `conversations` records, several turns each, the loss on the assistant's turns.

A record is `{"image": path or [paths] or absent, "conversations": [{"from": "human", "value": "<image>\\n..."},
{"from": "gpt", "value": ...}, ...]}` (LLaVA-Pretrain, LLaVA-Instruct-665K, ShareGPT4V, Cambrian); `from` may also
be `user` / `assistant` / `system`, and `role` / `content` are read like `from` / `value`. A record has any number of
`<image>` markers, one per image in order (zero: a text-only conversation); a record with images but no marker gets
them at the start of its first user turn, as LLaVA's preprocessing puts them.

A row is `{"text", "images", "turns"}`: `turns` the messages `[{"role", "content"}]`, `text` their contents joined
(for the marker check and the unknown-token share). `segments` frames the turns into text pieces, each with whether
it carries the loss:
- with the LLM's chat template (`llm.chat_template`): the template renders the conversation; each assistant turn's
  text and what the template closes it with (its end-of-turn token, e.g. `<|im_end|>` and the newline after it)
  carry the loss, found by rendering the turns before it (with the generation prompt) and up to it;
- without one, the plain frame: `<bos>` user ` ` assistant `<eos>` user ` ` assistant `<eos>` ...: each assistant
  turn written after its user turn with one space, as an instruction row's answer follows its prompt (a one-turn
  conversation is the instruction row), closed by `<eos>`; the assistant's tokens and each `<eos>` carry the loss.
The same records evaluate a model: the turns before the last assistant turn are the context, the last assistant
turn the reference (`context_and_reference`).
"""
from __future__ import annotations

from pathlib import Path

IMAGE_MARKER = "<image>"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
CONVERSATIONS = "conversations"
CHECKED = 20   # records the dry run reads of a conversation file


def features():
    """The rows' `datasets.Features` (`text`, `images`, `turns`); `datasets` loads only here (the dry run's check
    of a conversation file does without it)."""
    from datasets import Features, List, Value

    return Features({"text": Value("string"), "images": List(Value("string")), "turns": List(_turn())})


def _turn() -> dict:
    from datasets import Value

    return {"role": Value("string"), "content": Value("string")}


def check_file(source) -> str | None:
    """What makes a conversation file unusable, read on its first `CHECKED` records (for the dry run), or None:
    the file is missing, has no conversations column, or none of those records can train."""
    from ablate.data.vqa import first_records

    path = Path(source.path).expanduser()
    if not path.is_file():
        return None   # a folder or glob: the loader's rules (`_check_sources`) say whether data is there
    try:
        records = first_records(path, CHECKED)
    except (OSError, ValueError) as err:
        return f"conversation source {str(path)!r} cannot be read ({type(err).__name__}: {err})"
    column = source.text_column if any(source.text_column in r for r in records) else CONVERSATIONS
    if not any(column in r for r in records):
        present = sorted({k for r in records for k in r})
        return (f"conversation source {str(path)!r}: no column {CONVERSATIONS!r} (nor text_column "
                f"{source.text_column!r}) in its first {len(records)} records; columns present: {present}")
    usable = [r for r in records if (t := turns_of(r.get(column))) is not None
              and place_markers(t, len(images_of(r.get(source.image_column)))) is not None]
    if not usable:
        return (f"conversation source {str(path)!r}: none of its first {len(records)} records can train (roles "
                f"{'/'.join(ROLES)}, one assistant turn at least, one {IMAGE_MARKER} marker per image)")
    return None


def turns_of(messages) -> list[dict] | None:
    """`[{"role", "content"}]` from a record's `conversations` list; None when it cannot train (no list, a role
    not in `ROLES`, or no assistant turn)."""
    if not isinstance(messages, list):
        return None
    turns = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role = ROLES.get(str(_either(message, "from", "role") or "").lower())
        content = _either(message, "value", "content")
        if role is None or not isinstance(content, str):
            return None
        turns.append({"role": role, "content": content})
    return turns if any(t["role"] == "assistant" for t in turns) else None


def _either(message: dict, key: str, other: str):
    """`message[key]`, else `message[other]`: a file mixing `from`/`value` and `role`/`content` messages holds both keys
    in every message once read as a table, the absent ones None."""
    value = message.get(key)
    return message.get(other) if value is None else value


def images_of(value) -> list[str]:
    """A record's image column as a list: absent / None / "" -> [], a path -> [path], a list as it is."""
    if value is None or value == "":
        return []
    return [v for v in value if v] if isinstance(value, list) else [value]


def place_markers(turns: list[dict], n_images: int) -> list[dict] | None:
    """The turns with one `<image>` marker per image: as they are when the counts match, the markers put at the
    start of the first user turn when there are none; None when the counts differ otherwise."""
    markers = sum(t["content"].count(IMAGE_MARKER) for t in turns)
    if markers == n_images:
        return turns
    if markers or not n_images:
        return None
    first = next((i for i, t in enumerate(turns) if t["role"] == "user"), None)
    if first is None:
        return None
    out = [dict(t) for t in turns]
    out[first]["content"] = IMAGE_MARKER * n_images + "\n" + out[first]["content"]
    return out


def read_record(record: dict, column: str = CONVERSATIONS,
                image_column: str = "image") -> tuple[list[dict], list] | None:
    """A record's turns (`turns_of`, markers placed by `place_markers`) and its image values (`images_of`), as a
    conversation source reads them; None when it cannot train or be evaluated."""
    images = images_of(record.get(image_column))
    turns = turns_of(record.get(column))
    turns = place_markers(turns, len(images)) if turns is not None else None
    return None if turns is None else (turns, images)


def row(turns: list[dict], images: list[str]) -> dict:
    return {"text": "\n".join(t["content"] for t in turns), "images": images, "turns": turns}


def from_world(world):
    """The world's instruction questions as conversations: every question the world asks about one train image, in
    turn (the image's marker in the first), the answers as the assistant's turns."""
    from datasets import Dataset

    from ablate.data.instruction import world_rows

    rows, current, image = [], [], None
    for r in world_rows(world):
        if r["images"][0] != image and current:
            rows.append(row(current, [image]))
            current = []
        image = r["images"][0]
        prompt = r["text"] if not current else r["text"].replace(IMAGE_MARKER, "")
        current += [{"role": "user", "content": prompt}, {"role": "assistant", "content": r["answer"]}]
    if current:
        rows.append(row(current, [image]))
    return Dataset.from_list(rows, features=features())


def with_turns_column(table):
    """Rows of another kind with no turns, so that they mix with conversation rows (one schema)."""
    from datasets import Features, IterableDataset, List

    if "turns" in table.column_names:
        return table
    if isinstance(table, IterableDataset):   # a streamed source
        return table.map(lambda row: {"turns": []}).cast(Features({**table.features, "turns": List(_turn())}))
    return table.add_column("turns", [[] for _ in range(len(table))], feature=List(_turn()))


# ---------------------------------------------------------------- framing

def segments(turns: list[dict], tokenizer=None, template: bool = False) -> list[tuple[str, bool]]:
    """The conversation as text pieces `(text, carries the loss)`, in order; `template`: the tokenizer's chat
    template frames the turns, else the plain frame (module docstring; `<eos>` is the collator's to add: a piece
    `("", True)` after each assistant turn stands for it)."""
    return _template_segments(turns, tokenizer) if template else _plain_segments(turns)


def _plain_segments(turns: list[dict]) -> list[tuple[str, bool]]:
    out = []
    for turn in turns:
        if turn["role"] == "assistant":
            out += [(" " + turn["content"].strip(), True), (EOS, True)]
        else:
            out.append((turn["content"].strip(), False))
    return out


EOS = "\x00eos\x00"   # where the plain frame closes an assistant turn with the tokenizer's <eos>


def _template_segments(turns: list[dict], tokenizer) -> list[tuple[str, bool]]:
    def render(k: int, prompt: bool) -> str:
        text = tokenizer.apply_chat_template(turns[:k], tokenize=False, add_generation_prompt=prompt) if k else ""
        bos = tokenizer.bos_token
        return text[len(bos):] if bos and text.startswith(bos) else text   # rows start with <bos> already

    out, done = [], ""
    for k, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        head, full = render(k, True), render(k + 1, False)
        if not (head.startswith(done) and full.startswith(head)):
            raise ValueError("the LLM's chat template does not render a conversation as a growing text (an earlier "
                             "turn renders differently once later turns follow): train it without "
                             "llm.chat_template (the plain frame)")
        out += [(head[len(done):], False), (full[len(head):], True)]
        done = full
    rest = render(len(turns), False)[len(done):]
    if rest:
        out.append((rest, False))
    return out


def pieces(turns: list[dict], tokenizer=None, template: bool = False) -> list[tuple[str, bool]]:
    """`segments` cut as they are tokenised: each text piece is tokenised on its own (the spaces next to an `<image>`
    marker stripped), `IMAGE_MARKER` stands where an image's visual tokens go, `EOS` for `<eos>`; with whether it
    carries the loss. Training (`ablate.data.collate.Collator.encode_turns`) and generation (`prompt_pieces`) both
    encode these, so an evaluation context is the training row's beginning, token for token."""
    out = []
    for text, loss in segments(turns, tokenizer, template):
        if text == EOS:
            out.append((EOS, True))
            continue
        parts = text.split(IMAGE_MARKER)
        for k, part in enumerate(parts):
            part = part.lstrip() if k else part
            part = part.rstrip() if k < len(parts) - 1 else part
            if part:
                out.append((part, loss))
            if k < len(parts) - 1:
                out.append((IMAGE_MARKER, False))
    return out


def prompt_pieces(context: list[dict], tokenizer=None, template: bool = False) -> list[str]:
    """An evaluation context (the turns before the reply, `context_and_reference`) as `pieces` up to where the
    assistant's reply begins: what training encodes before the same reply (with `template`, the chat template's
    generation prompt last; in the plain frame, the last user turn)."""
    framed = pieces([*context, {"role": "assistant", "content": ""}], tokenizer, template)
    end = len(framed)
    while end and framed[end - 1][1]:   # the reply's own pieces (its text, what closes it) carry the loss
        end -= 1
    return [text for text, _ in framed[:end]]


def context_and_reference(turns: list[dict]) -> tuple[list[dict], str]:
    """For evaluation: the turns before the last assistant turn, and that turn's text (the reference)."""
    last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
    return turns[:last], turns[last]["content"].strip()


def from_table(table, source, name: str, image_path) -> tuple[list[dict], int]:
    """Rows from a table of records (`source.text_column`, else `conversations`; images from
    `source.image_column` when the table has it), and how many records could not train (no usable turns, or
    `<image>` markers that do not match the images)."""
    column = source.text_column if source.text_column in table.column_names else CONVERSATIONS
    if column not in table.column_names:
        from ablate.data.validate import SourceError

        raise SourceError(f"{name}: conversation source has no column {CONVERSATIONS!r} (nor text_column "
                          f"{source.text_column!r}); columns present: {table.column_names}. Set text_column in the "
                          "source config.")
    images = table[source.image_column] if source.image_column in table.column_names else [None] * len(table)
    rows, skipped = [], 0
    for messages, value in zip(table[column], images):
        paths = [image_path(v) for v in images_of(value)]
        turns = turns_of(messages)
        turns = place_markers(turns, len(paths)) if turns is not None else None
        if turns is None:
            skipped += 1
            continue
        rows.append(row(turns, paths))
    return rows, skipped
