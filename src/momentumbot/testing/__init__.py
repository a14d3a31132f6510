"""In-memory fakes of the project's protocols, for tests and examples.

Owns: a bar source over in-memory bars (`memory_bars.MemoryBarSource`) and an in-memory
broker implementing the broker port that fills with the shared fill rule
(`fake_broker.FakeBroker`)."""

from momentumbot.testing.memory_bars import MemoryBarSource

__all__ = ["MemoryBarSource"]
