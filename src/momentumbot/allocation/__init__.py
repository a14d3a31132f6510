"""Capital rotation (STRATEGY.md section 3): the quiet-volume statistic and the allocator.

Owns: quiet volume (`quiet_volume`), scores, eligibility, caps and budgets (`rotation`)."""
