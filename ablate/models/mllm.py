"""The multimodal LLM: image encoder -> connector -> causal LM.

Each image becomes `tokens_per_image` visual tokens, spliced into the LM's input embeddings where the text holds
that many `<image>` token ids (as in LLaVA-1.5's Hugging Face implementation). Interleaved documents hold several
images; their features arrive in the order their tokens appear.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from ablate.models.features import ImageFeatures
from ablate.models.loss import causal_lm_loss, fused_loss_applies
from ablate.models.visual_tokens import ImageTokens


@dataclass
class Parts:
    """The three modules, by the names that learning-rate multipliers use."""

    encoder: nn.Module
    connector: nn.Module
    llm: nn.Module


class MLLM(nn.Module):
    def __init__(self, encoder: nn.Module, connector: nn.Module, llm: nn.Module, tokenizer,
                 image_tokens: ImageTokens):
        super().__init__()
        self.encoder, self.connector, self.llm = encoder, connector, llm
        self.tokenizer = tokenizer
        self.image_tokens = image_tokens          # the ids one image stands for (slices and separators)
        self.image_token_id = image_tokens.image_token_id
        self.tokens_per_image = image_tokens.tokens
        self.features: ImageFeatures | None = None   # set by the builder: cached or live encoder features

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    def parts(self) -> Parts:
        return Parts(self.encoder, self.connector, self.llm)

    def embed(self, input_ids: torch.Tensor, image_paths: list[str], pixel_values: torch.Tensor | None = None,
              features: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with each image's visual tokens written over its `<image>` positions.

        Prepared ahead of the step (by a loader's workers or a prefetch thread), `features` (n, h*w, dim) are the
        encoder's outputs the preprocessed images; without either, the images are
        read from `image_paths` (or the feature cache).
        """
        embeds = self.llm.get_input_embeddings()(input_ids)
        slots = input_ids == self.image_token_id
        given = features if features is not None else pixel_values
        n_images = len(image_paths) if given is None else given.shape[0]
        if not n_images:
            if slots.any():
                raise ValueError("the batch has <image> tokens but no images")
            return embeds
        if features is not None:
            feats = features.to(self.device, non_blocking=True)
        elif pixel_values is None:
            feats = self.features(image_paths, self.device)
        else:
            frozen = getattr(self.features, "frozen", False)
            with torch.set_grad_enabled(not frozen and torch.is_grad_enabled()):
                feats = self.encoder(pixel_values.to(self.device, non_blocking=True))
        return self.splice(embeds, input_ids, self.connector(feats))

    def splice(self, embeds: torch.Tensor, input_ids: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """`embeds` with the visual tokens `(n_images, tokens, d_llm)` written, in order, over the `<image>` positions
        of `input_ids`: the one place where images enter the LM (training, generation, scoring)."""
        slots = input_ids == self.image_token_id
        visual = visual.to(embeds.dtype).reshape(-1, embeds.shape[-1])
        if visual.shape[0] != int(slots.sum()):
            raise ValueError(f"{int(slots.sum())} <image> slots for {visual.shape[0]} visual tokens "
                             f"({self.tokens_per_image} per image)")
        return embeds.masked_scatter(slots.unsqueeze(-1), visual)

    def forward(self, input_ids, attention_mask, labels, images: list[str], pixel_values=None, features=None,
                position_ids=None):
        """The LM's output for a batch; with labels, `.loss` is the mean next-token loss on labelled positions.

        When the LM's logits are a plain linear head, the loss is computed by `ablate.models.loss` without
        full-vocabulary logits (`.logits` is then None); other LMs use Hugging Face's own loss. `position_ids`:
        packed rows (`data.packing`), restarting at 0 with each row; the LM then makes its causal mask
        block-diagonal from them (transformers' packed-sequence detection), so `attention_mask` is not passed.
        """
        embeds = self.embed(input_ids, images, pixel_values, features)
        if position_ids is not None:
            attention_mask = None
        packed = {} if position_ids is None else {"position_ids": position_ids}
        if labels is None or not fused_loss_applies(self.llm):
            return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **packed)
        hidden = self.llm.base_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                     use_cache=False, **packed).last_hidden_state
        loss = causal_lm_loss(hidden, self.llm.get_output_embeddings().weight, labels)
        return CausalLMOutputWithPast(loss=loss)

    # ---- generation (the evaluation protocol: interleaved images and text in, strings out) ----
    def _encode_context(self, context: list, chat: bool = False) -> tuple[list[int], list[Image.Image]]:
        """`chat`: wrap the context in the tokenizer's user turn when the cell applies its chat template
        (`llm.chat_template`; generation only, as training wraps instruction rows). A context with a `frame` (a
        conversation, `ablate.evaluation.protocol.Conversation`) is framed as training framed its turns, by the
        chat template when the cell applies it, and not wrapped: its text pieces are tokenised one by one, its
        token ids (`<eos>`) placed as they are."""
        frame = getattr(context, "frame", None)
        if callable(frame):
            context, chat = frame(self.tokenizer, getattr(self.tokenizer, "chat_ids", None) is not None), False
        ids: list[int] = []
        images: list[Image.Image] = []
        bos = self.tokenizer.bos_token_id
        if bos is not None:
            ids.append(bos)
        turn = getattr(self.tokenizer, "chat_ids", None) if chat else None
        if turn:
            ids.extend(turn[0])
        for part in context:
            if isinstance(part, Image.Image):
                images.append(part.convert("RGB"))
                ids.extend(self.image_tokens.block(part))
            elif isinstance(part, int):
                ids.append(part)
            else:
                ids.extend(self.tokenizer(str(part), add_special_tokens=False)["input_ids"])
        if turn:
            ids.extend(turn[1])
        return ids, images

    def _visual_from_pil(self, images: list[Image.Image]) -> torch.Tensor:
        if getattr(self.features, "key", None) is not None:   # frozen encoder + feature cache: shared by the cells
            return self.connector(self.features(images, self.device))
        pixels = self.encoder.preprocess(images).to(self.device)
        return self.connector(self.encoder(pixels))

    @torch.no_grad()
    def generate(self, contexts: list[list], max_new_tokens: int = 8) -> list[str]:
        """Greedy decoding with the LM's KV cache; contexts are left-padded into one batch."""
        encoded = [self._encode_context(c, chat=True) for c in contexts]
        width = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, (ids, _) in enumerate(encoded):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        embeds = self.llm.get_input_embeddings()(input_ids)
        all_images = [img for _, imgs in encoded for img in imgs]
        if all_images:
            embeds = self.splice(embeds, input_ids, self._visual_from_pil(all_images))
        eos = self.tokenizer.eos_token_id
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=attention, max_new_tokens=max_new_tokens,
                                do_sample=False, pad_token_id=pad, eos_token_id=eos)
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]

    @torch.no_grad()
    def loglikelihood(self, contexts: list[list], continuations: list[str]) -> list[float]:
        """Sum of log-probabilities of each continuation after its context."""
        scores = []
        for context, continuation in zip(contexts, continuations):
            ids, images = self._encode_context(context)
            cont = self.tokenizer(" " + continuation, add_special_tokens=False)["input_ids"]
            input_ids = torch.tensor([ids + cont], device=self.device)
            embeds = self.llm.get_input_embeddings()(input_ids)
            if images:
                embeds = self.splice(embeds, input_ids, self._visual_from_pil(images))
            logits = self.llm(inputs_embeds=embeds).logits[0, len(ids) - 1:-1]
            logp = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(cont, device=self.device)[:, None])
            scores.append(float(logp.sum()))
        return scores
