"""A word-level tokenizer built in a test: any word outside its list is `<unk>` (the tokenizers that the
unknown-token share is about, e.g. older `hf:` models)."""
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def word_tokenizer(words) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over `words` (and the specials): anything else is <unk>."""
    vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "<image>", *dict.fromkeys(words)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", additional_special_tokens=["<image>"])
