"""The bundled fake SMSC (installed as smppd.fake_smsc)."""

from .server import AssembledMessage, Behaviour, FakeSmsc, SmscProtocol, SubmitRecord

__all__ = ["AssembledMessage", "Behaviour", "FakeSmsc", "SmscProtocol", "SubmitRecord"]
