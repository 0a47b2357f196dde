"""metantk_nas.data: dataset readers, the prepared store, the embedded glyph dataset,
few-shot task sampling and batched tensor transforms.

Modules: ``store`` (write_store / open_split), ``readers`` (convert the real formats),
``safe_pickle`` (untrusted pickles), ``glyphs`` (generate_glyphs), ``episodes``
(TaskSampler), ``transforms`` (torch; imported only where needed), ``fixtures`` (tiny
real-format files for tests), ``cli`` (prepare / inspect).
"""
