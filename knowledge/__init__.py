"""Knowledge: ingest manuals and FAQs, index them (BM25 + dense), retrieve, answer, evaluate."""
