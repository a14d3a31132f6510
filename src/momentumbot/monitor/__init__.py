"""What an operator sees of a trading run, from outside the bot.

Owns: a run's snapshot (meta, books, positions, working orders, recent fills, halts) read from
its run folder's journal without writing to it (`snapshot`), and `momentumbot status`
(`status`)."""
