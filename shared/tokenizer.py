"""Character-level tokenizer (SPEC.md: sorted characters, then one BOS token).

    chars = sorted(set("".join(docs)))   ids 0 .. len(chars)-1
    BOS   = len(chars)                   marks both the start and the end of a document
    vocab_size = len(chars) + 1          27 on names.txt
"""

from dataclasses import dataclass

from shared.errors import UserError


@dataclass(frozen=True)
class Tokenizer:
    chars: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "_index", {ch: i for i, ch in enumerate(self.chars)})

    @classmethod
    def from_docs(cls, docs: list[str]) -> "Tokenizer":
        return cls(tuple(sorted(set("".join(docs)))))

    @property
    def bos(self) -> int:
        return len(self.chars)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        """Character ids of `text`, without BOS."""
        try:
            return [self._index[ch] for ch in text]
        except KeyError as err:
            raise UserError(
                f"character {err.args[0]!r} in {text!r} is not in the vocabulary "
                f"({''.join(self.chars)!r}); use only characters that occur in the training data"
            ) from None

    def encode_doc(self, doc: str) -> list[int]:
        """A document as the model sees it: [BOS] + ids + [BOS]."""
        return [self.bos] + self.encode(doc) + [self.bos]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; BOS tokens are dropped."""
        return "".join(self.chars[i] for i in ids if i != self.bos)


def positions(tokens: list[int], block_size: int) -> int:
    """How many next-token targets a document trains: min(block_size, len(tokens) - 1)."""
    return min(block_size, len(tokens) - 1)
