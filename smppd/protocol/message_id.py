"""Matching the message id of a submit_sm_resp with the one in its receipt.

Carriers disagree with themselves: some return hex in submit_sm_resp and decimal in
the receipt (in the text, in the receipted_message_id TLV, or both), some pad with
zeros, some change case; ids can exceed 2**63 or be UUIDs. Ids stay strings end to
end (Python ints are exact, so a 20-digit id survives a conversion).

Two ways to match:
- an explicit `IdPolicy` (config `id_format: {response: hex, receipt: dec}`): both
  sides become the decimal digits of their value;
- `auto` (the default): the response id is kept canonical (no blanks, no leading
  zeros, upper case) and, per SMSC and per receipt source (TLV or text), an
  `IdLearner` learns which reading of the receipt id gives the response id: the same
  string, decimal-to-hex or hex-to-decimal. It learns only from observations that
  admit a single reading (exactly one reading names a message in progress, or the
  TLV and the text name each other one way only) and only once several agree; until
  then a receipt is kept, not matched, so an ambiguous id (`12345` is both the decimal
  of hex `3039` and itself) never settles the wrong message.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

_HEX = frozenset(string.hexdigits)


class IdFormat(StrEnum):
    AUTO = "auto"  # learnt per SMSC (AutoIds); config only, never a side of IdPolicy
    STRING = "string"  # compare as sent, less surrounding blanks and NULs
    HEX = "hex"
    DEC = "dec"


def match_key(raw: str, fmt: IdFormat) -> str:
    """The key an id is matched on under an explicit format. An id that does not
    parse in the configured numeric format keeps its string form (and will not
    match: the caller counts it)."""
    value = raw.strip().strip("\x00").strip()
    if fmt is IdFormat.STRING:
        return value
    try:
        return str(int(value, 16 if fmt is IdFormat.HEX else 10))
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class IdPolicy:
    """Explicit formats: no learning."""

    submit_resp: IdFormat = IdFormat.STRING
    receipt: IdFormat = IdFormat.STRING

    def from_response(self, raw: str) -> str:
        return match_key(raw, self.submit_resp)

    def from_receipt(self, raw: str) -> str:
        return match_key(raw, self.receipt)


class Reading(StrEnum):
    """How a receipt id relates to the response id it names."""

    SAME = "same"  # the same string, less zero padding and case
    DEC_TO_HEX = "dec-to-hex"  # the response is hex, the receipt its decimal value
    HEX_TO_DEC = "hex-to-dec"  # the response is decimal, the receipt its hex value


class Source(StrEnum):
    TLV = "tlv"  # receipted_message_id
    TEXT = "text"  # id: in the receipt text


def canonical(raw: str) -> str:
    """An id as auto matching keeps it: no blanks or NULs, no leading zeros, upper
    case (`00b8be19` and `B8BE19` are one id)."""
    value = raw.strip().strip("\x00").strip().upper()
    return value.lstrip("0") or ("0" if value else "")


def read(raw: str, reading: Reading) -> str | None:
    """The response key a receipt id names under `reading`; None when the id cannot
    be read that way (letters in a decimal reading)."""
    value = canonical(raw)
    if not value:
        return None
    if reading is Reading.SAME:
        return value
    if reading is Reading.DEC_TO_HEX:
        return f"{int(value):X}" if value.isdigit() else None
    return str(int(value, 16)) if all(ch in _HEX for ch in value) else None


def readings(raw: str) -> dict[Reading, str]:
    """Every reading of a receipt id that is possible, with the key it gives."""
    found = {}
    for reading in Reading:
        key = read(raw, reading)
        if key is not None:
            found[reading] = key
    return found


def pair_reading(raw: str, key: str) -> Reading | None:
    """The one reading under which `raw` names `key`, or None when there is none or
    more than one (a single-digit id reads the same every way)."""
    matching = [reading for reading, found in readings(raw).items() if found == key]
    return matching[0] if len(matching) == 1 else None


class IdLearner:
    """One SMSC's reading for one receipt source, learnt from unambiguous
    observations: `needed` of them agreeing, and none disagreeing."""

    def __init__(self, needed: int = 3, mode: Reading | None = None) -> None:
        self.needed = needed
        self.mode = mode
        self.votes: Counter[Reading] = Counter()

    @property
    def learned(self) -> bool:
        return self.mode is not None

    def observe(self, reading: Reading) -> bool:
        """Count one observation; True when it completes the learning."""
        if self.mode is not None:
            return False
        self.votes[reading] += 1
        if len(self.votes) == 1 and self.votes[reading] >= self.needed:
            self.mode = reading
            return True
        return False

    @property
    def contradicted(self) -> bool:
        """Observations disagree: the SMSC mixes formats; nothing is learnt."""
        return len(self.votes) > 1


@dataclass(frozen=True, slots=True)
class ReceiptId:
    """What a receipt's ids give: a key to match now, or the candidates of an id whose
    reading is not learnt yet (matched once it is)."""

    key: str | None
    source: Source
    raw: str  # the id the receipt carried from `source`, canonical
    candidates: tuple[tuple[Reading, str], ...] = ()


class AutoIds:
    """Auto matching for one SMSC: a learner per receipt source."""

    def __init__(self, needed: int = 3) -> None:
        self.learners = {source: IdLearner(needed) for source in Source}
        self.learnt: list[tuple[Source, Reading]] = []  # completed, not yet reported
        self._pairs_left = 1000  # receipts with both ids read to learn the text's reading

    def set_mode(self, source: Source, reading: Reading) -> None:
        """A mode learnt earlier (kept in the store across restarts)."""
        self.learners[source].mode = reading

    def from_response(self, raw: str) -> str:
        return canonical(raw)

    def mode(self, source: Source) -> Reading | None:
        return self.learners[source].mode

    def receipt(self, tlv_id: str | None,
                text_id: Callable[[], str | None]) -> ReceiptId | None:
        """The key (or the candidates) of a receipt with these ids. When one source
        is learnt and both are present, the other is learnt from the pair. `text_id`
        is called only when the text's id is needed (parsing the text costs more than
        the rest of a receipt)."""
        tlv, text = self.learners[Source.TLV], self.learners[Source.TEXT]
        needs_text = (tlv_id is None or not tlv.learned
                      or (not text.learned and self._pairs_left > 0))
        if needs_text and tlv_id is not None and tlv.learned:
            self._pairs_left -= 1  # an SMSC whose text has no id must not cost for ever
        sources = [(Source.TLV, tlv_id), (Source.TEXT, text_id() if needs_text else None)]
        present = [(source, raw) for source, raw in sources if raw and canonical(raw)]
        if not present:
            return None
        for source, raw in present:
            mode = self.learners[source].mode
            if mode is not None:
                key = read(raw, mode)
                self._learn_from_pair(present, source, key)
                return ReceiptId(key, source, canonical(raw))
        source, raw = present[0]  # the TLV when there is one
        return ReceiptId(None, source, canonical(raw), tuple(readings(raw).items()))

    def _learn_from_pair(self, present: list[tuple[Source, str]], known: Source,
                         key: str | None) -> None:
        if key is None:
            return
        for source, raw in present:
            if source is not known and not self.learners[source].learned:
                reading = pair_reading(raw, key)
                if reading is not None:
                    self.observe(source, reading)

    def observe(self, source: Source, reading: Reading) -> None:
        if self.learners[source].observe(reading):
            self.learnt.append((source, reading))

    def take_learnt(self) -> list[tuple[Source, Reading]]:
        """Modes learnt since the last call: the caller logs and stores them."""
        learnt, self.learnt = self.learnt, []
        return learnt
