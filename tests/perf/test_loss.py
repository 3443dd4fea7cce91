"""The fused/chunked loss is Hugging Face's causal-LM loss: same value, same gradients (fp32, tight tolerance)."""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ablate.models.loss import (
    ChunkedLinearCrossEntropy,
    causal_lm_loss,
    fused_loss_applies,
    labelled_rows,
    linear_cross_entropy,
    reference_loss,
)

torch.set_num_threads(1)


def tiny_llm(tied: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=tied))


def batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 97, (3, 11), generator=g)
    labels = ids.clone()
    labels[:, :4] = -100          # "visual" / prompt positions
    labels[2, 8:] = -100          # padding at the end of one row
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0
    return ids, mask, labels


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("chunk_rows", [4, 1024])
def test_loss_and_gradients_equal_hf(tied, chunk_rows):
    ids, mask, labels = batch()
    hf = tiny_llm(tied)
    hf_loss = hf(input_ids=ids, attention_mask=mask, labels=labels).loss
    hf_loss.backward()
    hf_grads = {n: p.grad.clone() for n, p in hf.named_parameters()}

    ours = tiny_llm(tied)
    hidden = ours.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    loss = causal_lm_loss(hidden, ours.lm_head.weight, labels, chunk_rows=chunk_rows, backend="chunked")
    loss.backward()
    assert loss.item() == pytest.approx(hf_loss.item(), rel=1e-6, abs=1e-6)
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, hf_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_labelled_rows_shift_and_count():
    ids, _, labels = batch()
    hidden = torch.arange(3 * 11, dtype=torch.float32).reshape(3, 11, 1)
    rows, targets = labelled_rows(hidden, labels)
    # row 0 and 1: targets at positions 4..10 -> hidden positions 3..9 (7 each); row 2: targets 4..7 (4)
    assert rows.shape == (18, 1)
    assert rows[:7, 0].tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert targets[:7].tolist() == ids[0, 4:].tolist()


def test_chunked_equals_full_softmax_and_no_grad_mode():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(13, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 8, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 50, (13,), generator=g)
    assert torch.autograd.gradcheck(lambda a, b: ChunkedLinearCrossEntropy.apply(a, b, y, 5), (h, w))
    expected = torch.nn.functional.cross_entropy(h @ w.t(), y)
    with torch.no_grad():
        assert linear_cross_entropy(h, w, y, chunk_rows=3, backend="chunked").item() == pytest.approx(expected.item())


def test_reference_loss_is_hf_loss():
    ids, mask, labels = batch()
    out = tiny_llm(False)(input_ids=ids, attention_mask=mask, labels=labels)
    assert reference_loss(out.logits, labels).item() == pytest.approx(out.loss.item(), rel=1e-6)


def test_bf16_autocast_close_to_fp32():
    ids, mask, labels = batch()
    llm = tiny_llm(False)
    hidden = llm.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    exact = causal_lm_loss(hidden, llm.lm_head.weight, labels, backend="chunked")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = causal_lm_loss(hidden, llm.lm_head.weight, labels, backend="chunked")
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(exact.item(), rel=2e-2)


def test_fused_loss_applies_only_to_plain_heads():
    llm = tiny_llm(False)
    assert fused_loss_applies(llm)
    llm.config.final_logit_softcapping = 30.0
    assert not fused_loss_applies(llm)
    llm.config.final_logit_softcapping = None
    llm.lm_head = torch.nn.Linear(32, 97, bias=True)
    assert not fused_loss_applies(llm)


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match="backend"):
        linear_cross_entropy(torch.zeros(2, 4), torch.zeros(5, 4), torch.zeros(2, dtype=torch.long), backend="x")
