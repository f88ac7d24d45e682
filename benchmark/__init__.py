"""The editing benchmark (issue 18, docs/benchmark.md): the set, the editors it scores, the protocol
(Iter0 clone, Iter1..3 edits, prompt-fixed ablation, generalisation), scoring and tables."""
