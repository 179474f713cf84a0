"""Train the self-disclosure classifier on companion/data/memory/disclosure_train.tsv and
write disclosure_model.json beside it: `python -m companion.memory.train_disclosure`."""

from __future__ import annotations

from companion.memory import disclosure
from companion.memory.embed import get_embedder


def main() -> None:
    """Fit, report the training accuracy, save."""
    texts, labels = disclosure.load_training()
    vectors = get_embedder().encode(texts)  # (N, 384)
    model = disclosure.train(vectors, labels)
    accuracy = float(((model.probabilities(vectors) >= disclosure.THRESHOLD) == (labels > 0)).mean())
    disclosure.save(model, sentences=len(texts), training_accuracy=round(accuracy, 4))
    print(f"{len(texts)} sentences, training accuracy {accuracy:.3f} -> {disclosure.MODEL_FILE}")


if __name__ == "__main__":
    main()
