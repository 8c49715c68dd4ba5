"""scikit-learn forest: ``RandomForestClassifier(n_jobs=2)`` fit and predict in a loop.

scikit-learn hands the trees to joblib's threading backend, which makes a thread pool for
every ``fit`` and every ``predict``: the thread churn seen in AI/ML programs under a
library OS.  The data set is generated (``make_classification``), so nothing is fetched.
Each iteration trains a forest with its own seed on the same split and predicts the test
set.  Trees are grown until their leaves are pure, so every vote is exactly 0 or 1 and the
predictions do not depend on the order the threads add them up.  The result line holds the
mean accuracy and a digest of every prediction, in order.

    python sklearn_forest.py [--size S] [--jobs N]
"""

from __future__ import annotations

import argparse
import hashlib

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

ITERATIONS = 60  # at --size 1
TREES = 10
SAMPLES, FEATURES = 600, 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1.0, help="work relative to the default")
    parser.add_argument("--jobs", type=int, default=2, help="n_jobs of the forest")
    args = parser.parse_args()
    if args.size <= 0 or args.jobs < 1:
        parser.error("--size must be > 0 and --jobs >= 1")
    iterations = max(1, round(ITERATIONS * args.size))
    x, y = make_classification(
        n_samples=SAMPLES, n_features=FEATURES, n_informative=8, random_state=0
    )
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    digest = hashlib.sha256()
    correct = 0
    for i in range(iterations):
        forest = RandomForestClassifier(n_estimators=TREES, n_jobs=args.jobs, random_state=i)
        forest.fit(x_train, y_train)
        predicted = forest.predict(x_test)
        digest.update(predicted.astype("int64").tobytes())
        correct += int((predicted == y_test).sum())
    accuracy = correct / (iterations * len(y_test))
    print(
        f"sklearn_forest iterations={iterations} accuracy={accuracy:.6f} "
        f"digest={digest.hexdigest()[:16]}"
    )


if __name__ == "__main__":
    main()
