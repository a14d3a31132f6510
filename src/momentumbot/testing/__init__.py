"""In-memory fakes of the project's protocols, for tests and examples.

Owns: an in-memory broker implementing the broker port that fills with the shared fill rule
(`fake_broker.FakeBroker`); re-exports the in-memory bar source (`data.memory.MemoryBarSource`).
"""

from momentumbot.data.memory import MemoryBarSource

__all__ = ["MemoryBarSource"]
