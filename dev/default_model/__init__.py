"""How the bundled model was built and scored (MODEL_CARD.md)."""
