"""The per-document stages, one a file: read, normalize, sentences, segment, entities, tokenize, pack."""
