"""Capital rotation (STRATEGY.md section 3): the quiet-volume statistic and the allocator.

Owns: quiet volume (`quiet_volume`; its window followed by its k-th smallest, as (volume,
slot) pairs in `qv_pairs` or as values in `qv_rank`, or as a sorted copy updated in place,
`qv_sorted`), scores, eligibility, caps and budgets (`rotation`)."""
