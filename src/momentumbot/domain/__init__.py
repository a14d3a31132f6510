"""The vocabulary every layer shares, importing nothing of the project.

Owns: errors and their exit codes (`errors`), time and money units (`units`), tickers
(`symbols`), bar arrays (`bars`), orders: side, reason, status and state enums (`orders`);
whether a second process would get a core of its own (`machine`)."""
