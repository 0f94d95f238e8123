"""PDUs per second for encode/decode of submit_sm and deliver_sm (smppd's codec and,
for comparison, smpplib's own generate/parse). Prints figures; asserts nothing."""

from __future__ import annotations

import time

import smpplib.smpp

from smppd.protocol import pdu as codec
from smppd.protocol import receipts

N = 100_000


class _Client:
    sequence = 1

    def next_sequence(self) -> int:
        return 1


def rate(label: str, fn, n: int = N) -> None:  # type: ignore[no-untyped-def]
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {n / elapsed:>10,.0f} PDUs/s  ({elapsed / n * 1e6:.2f} us each)")


def main() -> None:
    submit = codec.make("submit_sm", 12345, source_addr="Acme", source_addr_ton=5,
                        destination_addr="48500100200", dest_addr_ton=1, dest_addr_npi=1,
                        registered_delivery=1, short_message=b"Your code is 123456." * 3)
    text = receipts.format_text("12107289", "DELIVRD").encode()
    deliver = codec.make("deliver_sm", 77, source_addr="48500100200", destination_addr="Acme",
                         esm_class=4, short_message=text, receipted_message_id="12107289",
                         message_state=2)
    submit_raw, deliver_raw = codec.encode(submit), codec.encode(deliver)
    rate("smppd encode submit_sm", lambda: codec.encode(submit))
    rate("smppd decode submit_sm", lambda: codec.decode(submit_raw))
    rate("smppd encode deliver_sm", lambda: codec.encode(deliver))
    rate("smppd decode deliver_sm", lambda: codec.decode(deliver_raw))
    rate("smppd decode deliver_sm + parse receipt",
         lambda: receipts.parse(codec.decode(deliver_raw)))
    client = _Client()
    rate("smpplib generate submit_sm (reference)", lambda: smpplib.smpp.make_pdu(
        "submit_sm", client=client, sequence=1, source_addr="Acme", source_addr_ton=5,
        destination_addr="48500100200", registered_delivery=1,
        short_message=b"Your code is 123456." * 3).generate(), N // 5)
    rate("smpplib parse deliver_sm (reference)",
         lambda: smpplib.smpp.parse_pdu(deliver_raw, client=client), N // 5)


if __name__ == "__main__":
    main()
