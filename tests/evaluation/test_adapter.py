"""`AblateLMM` answers lmms-eval's three request types, batching and keeping order."""
import pytest
from colour_world import COLOURS, ColourGenerator
from PIL import Image

pytest.importorskip("lmms_eval")
from lmms_eval.api.instance import Instance  # noqa: E402

from ablate.evaluation.adapter import AblateLMM, cut_at_stops, interleave  # noqa: E402

DOCS = [{"colour": c} for c in COLOURS]  # red green blue yellow white black


def to_visual(doc):
    return [Image.new("RGB", (4, 4), COLOURS[doc["colour"]])]


def two_images(doc):
    return [Image.new("RGB", (4, 4), COLOURS["white"]), to_visual(doc)[0]]


def _adapter(gen, batch_size=4):
    lm = AblateLMM(gen, batch_size=batch_size, max_new_tokens=3)
    lm.task_dict = {"t": {"test": DOCS}}
    return lm


def _gen_request(i, ctx="<image>the colour is", until=(".",), visual=to_visual):
    return Instance("generate_until", (ctx, {"until": list(until), "max_new_tokens": 5}, visual, i, "t", "test"),
                    idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1})


def test_generate_until_answers_each_request_in_order_cut_at_stops():
    gen = ColourGenerator()
    lm = _adapter(gen)
    answers = lm.generate_until([_gen_request(i) for i in range(len(DOCS))])
    assert answers == [f"A {c}" for c in COLOURS]
    assert lm.generated == 6


class Recorder(ColourGenerator):
    def __init__(self):
        super().__init__()
        self.batches, self.max_new = [], []

    def generate(self, contexts, max_new_tokens):
        self.batches.append(len(contexts))
        self.max_new.append(max_new_tokens)
        return super().generate(contexts, max_new_tokens)


def test_requests_are_batched_and_grouped_by_generation_settings():
    gen = Recorder()
    lm = _adapter(gen, batch_size=4)
    reqs = [_gen_request(i, until=("\n",)) for i in range(6)] + [_gen_request(0, until=(".",))]
    answers = lm.generate_until(reqs)
    assert sorted(gen.batches) == [1, 2, 4]
    assert gen.max_new == [5, 5, 5]
    assert answers[0] == "A red." and answers[-1] == "A red"


def test_markers_interleave_images_with_text_and_plain_contexts_put_images_first():
    gen = ColourGenerator()
    lm = _adapter(gen)
    lm.generate_until([_gen_request(2, ctx="<image>demo red\n<image>the colour is", visual=two_images),
                       _gen_request(1, ctx="What colour?")])
    first, second = gen.contexts
    assert [type(s).__name__ for s in first] == ["Image", "str", "Image", "str"]
    assert first[1] == "demo red\n" and first[3] == "the colour is"
    assert isinstance(second[0], Image.Image) and second[1] == "What colour?"
    with pytest.raises(ValueError, match="2 <image> markers for 1 images"):
        interleave("<image>a<image>b", [Image.new("RGB", (2, 2))])


def test_loglikelihood_returns_losses_so_argmin_picks_the_likely_answer():
    lm = _adapter(ColourGenerator())
    reqs = [Instance("loglikelihood", ("<image>the colour is", f" {c}", to_visual, 2, "t", "test"), idx=j,
                     metadata={"task": "t", "doc_id": 2, "repeats": 1}) for j, c in enumerate(["red", "blue"])]
    losses = lm.loglikelihood(reqs)
    assert losses == [(5.0, False), (-0.0, False)]
    target = Instance("loglikelihood", ("<image>the colour is", lambda d: d["colour"], to_visual, 4, "t", "test"),
                      idx=0, metadata={"task": "t", "doc_id": 4, "repeats": 1})
    assert lm.loglikelihood([target]) == [(-0.0, False)]


def test_multi_round_generation_follows_the_tasks_doc_to_text():
    def doc_to_text(doc, previous_output, round_idx, previous_round_info):
        done = round_idx >= 2
        return [to_visual({"colour": "blue"})[0]], "<image>and now?", done, None, {"round": round_idx}

    lm = _adapter(ColourGenerator())
    req = Instance("generate_until_multi_round",
                   ("<image>first?", {"until": ["."]}, to_visual, doc_to_text, 0, "t", "test"),
                   idx=0, metadata={"task": "t", "doc_id": 0, "repeats": 1})
    assert lm.generate_until_multi_round([req]) == [["A red", "A blue"]]


def test_cut_at_stops():
    assert cut_at_stops(" cat. dog\n", [".", "\n"]) == "cat"
    assert cut_at_stops("cat", "\n") == "cat"
    assert cut_at_stops(" cat ", []) == "cat"
