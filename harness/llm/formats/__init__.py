"""Readers of LLM-evaluation data, one module per format (registered in harness.builtins).

running text:  ``wikitext-rows`` (perplexity)
documents:     ``jsonl-text`` (C4 shards; several parts allowed), ``gensim-wiki`` (also as text)
examples:      ``hf-arrow-stream``, ``oe-eval-requests`` (zero-shot documents, converted for lm-eval
               by :mod:`harness.llm.zeroshot_data`)
"""
