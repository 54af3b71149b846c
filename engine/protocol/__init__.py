"""What portals are promised, in files they can use: the JSON Schema of every delivery and
the test vectors (docs/protocol.md, "Schema" and "Test vectors"). Both are generated from
the engine's own models and code (``openlines protocol schema|vectors``), and the tests fail
when the committed files differ from what the code generates."""
