"""SMPP 3.4 numbers with names, taken from smpplib so there is one source of truth.

smpplib's tables are the reference for command ids and command_status codes; this
module only re-indexes them (code -> name) so lookups on the hot path are dict hits
rather than smpplib's linear scans.
"""

from __future__ import annotations

from smpplib import command_codes
from smpplib import consts as _consts

COMMAND_IDS: dict[str, int] = dict(command_codes.commands)
COMMAND_NAMES: dict[int, str] = {code: name for name, code in COMMAND_IDS.items()}

RESPONSE_BIT = 0x80000000

# command_status values smppd reacts to by name.
ESME_ROK = _consts.SMPP_ESME_ROK
ESME_RINVMSGLEN = _consts.SMPP_ESME_RINVMSGLEN
ESME_RINVCMDLEN = _consts.SMPP_ESME_RINVCMDLEN
ESME_RINVCMDID = _consts.SMPP_ESME_RINVCMDID
ESME_RINVBNDSTS = _consts.SMPP_ESME_RINVBNDSTS
ESME_RALYBND = _consts.SMPP_ESME_RALYBND
ESME_RSYSERR = _consts.SMPP_ESME_RSYSERR
ESME_RINVSRCADR = _consts.SMPP_ESME_RINVSRCADR
ESME_RINVDSTADR = _consts.SMPP_ESME_RINVDSTADR
ESME_RBINDFAIL = _consts.SMPP_ESME_RBINDFAIL
ESME_RINVPASWD = _consts.SMPP_ESME_RINVPASWD
ESME_RINVSYSID = _consts.SMPP_ESME_RINVSYSID
ESME_RMSGQFUL = _consts.SMPP_ESME_RMSGQFUL
ESME_RINVSYSTYP = _consts.SMPP_ESME_RINVSYSTYP
ESME_RTHROTTLED = _consts.SMPP_ESME_RTHROTTLED
ESME_RX_T_APPN = _consts.SMPP_ESME_RX_T_APPN
ESME_RX_P_APPN = _consts.SMPP_ESME_RX_P_APPN
ESME_RX_R_APPN = _consts.SMPP_ESME_RX_R_APPN
ESME_RINVOPTPARSTREAM = _consts.SMPP_ESME_RINVOPTPARSTREAM
ESME_RUNKNOWNERR = _consts.SMPP_ESME_RUNKNOWNERR

STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("SMPP_")
    for name, value in vars(_consts).items()
    if name.startswith("SMPP_ESME_") and isinstance(value, int)
}

STATUS_CODES: dict[str, int] = {name: value for value, name in STATUS_NAMES.items()}


def status_name(status: int) -> str:
    """The ESME_R... name of a command_status, or its hex form for vendor codes."""
    return STATUS_NAMES.get(status, f"0x{status:08X}")


# esm_class (SMPP 3.4 section 5.2.12)
ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
ESM_TYPE_SMSC_RECEIPT = 0x04
ESM_TYPE_SME_ACK = 0x08
ESM_TYPE_USER_ACK = 0x10
ESM_TYPE_INTERMEDIATE = 0x20
RECEIPT_TYPES = frozenset({ESM_TYPE_SMSC_RECEIPT, ESM_TYPE_INTERMEDIATE})

# registered_delivery: ask for a receipt on final outcome (success or failure).
REGISTERED_DELIVERY_FINAL = 0x01

# data_coding values smppd sends.
DC_DEFAULT = 0x00
DC_IA5 = 0x01
DC_BINARY = 0x04
DC_LATIN1 = 0x03
DC_UCS2 = 0x08

# Type of number / numbering plan.
TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
TON_NATIONAL = 2
TON_ALPHANUMERIC = 5
NPI_UNKNOWN = 0
NPI_ISDN = 1

MAX_SEQUENCE = 0x7FFFFFFF
INTERFACE_VERSION_34 = 0x34
