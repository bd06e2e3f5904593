"""Synthetic customer records in the raw CSV format, for scale benchmarks.

The real file has 7,043 rows: too few to show how the pipeline grows. Rather
than copy it a hundred times (duplicate ids fail validation, and a model on
repeated rows learns nothing new), `synthesize` draws fresh records from the
data contract itself: levels from `contract.CATEGORICAL_FEATURES`, ranges from
`contract.NUMERIC_FEATURES`, cross-field rules from `contract.IMPLICATIONS`.
So a new level, range or rule (or a new categorical column) reaches the
benchmark without editing it, and every file it writes passes `churn validate`.

The output is the *raw* format, quirks included (``SeniorCitizen`` as 0/1, a
single space for the ``TotalCharges`` of zero-tenure customers), so the
benchmark also times `churn prepare`'s repair of those quirks.

Everything is vectorised with numpy: a million rows take a few seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn import contract

# Column order of data/raw/telco_churn.csv (validation accepts any order; the
# benchmark writes the real one so its CSV looks like the file it stands for).
RAW_COLUMNS: tuple[str, ...] = (
    contract.ID_COLUMN,
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    *contract.ADD_ONS,
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    contract.LABEL.name,
)

# Level shares close to the real file's, so the synthetic data is as hard to
# model as the real one. Columns not listed get uniform shares. Sentinel
# levels ("No phone service", ...) are never drawn: `IMPLICATIONS` sets them.
SHARES: dict[str, dict[str, float]] = {
    "SeniorCitizen": {"No": 0.84, "Yes": 0.16},
    "Dependents": {"No": 0.7, "Yes": 0.3},
    "PhoneService": {"No": 0.1, "Yes": 0.9},
    "InternetService": {"DSL": 0.34, "Fiber optic": 0.44, "No": 0.22},
    "Contract": {"Month-to-month": 0.55, "One year": 0.21, "Two year": 0.24},
    "PaperlessBilling": {"No": 0.41, "Yes": 0.59},
    "PaymentMethod": {
        "Bank transfer (automatic)": 0.22,
        "Credit card (automatic)": 0.22,
        "Electronic check": 0.33,
        "Mailed check": 0.23,
    },
}

# Tenure is 72 * Beta(a, b) per contract: long contracts mean long tenure
# (mean tenure in the real file: 18, 42 and 57 months).
TENURE_BETA: dict[str, tuple[float, float]] = {
    "Month-to-month": (0.6, 1.8),
    "One year": (1.5, 1.1),
    "Two year": (2.0, 0.55),
}

# Monthly charge, USD: a price per service plus noise, clipped to the real
# file's range (the contract allows 0..200, but no real plan is priced there).
PRICE: dict[str, float] = {"PhoneService": 20.0, "MultipleLines": 5.0}
INTERNET_PRICE: dict[str, float] = {"No": 0.0, "DSL": 25.0, "Fiber optic": 45.0}
ADD_ON_PRICE = 5.0
STREAMING_PRICE = 10.0
CHARGE_RANGE = (18.25, 118.75)
# Customers not yet billed (tenure 0): 0.16% of the real file.
NEW_CUSTOMER_SHARE = 0.002

# Churn log-odds: a few drivers the real data is known for, so the model has
# signal to find and the benchmark times a realistic fit. The intercept puts
# the positive rate near the real 26%.
CHURN_LOGIT: dict[tuple[str, str], float] = {
    ("Contract", "Month-to-month"): 1.4,
    ("Contract", "Two year"): -1.2,
    ("InternetService", "Fiber optic"): 0.9,
    ("PaymentMethod", "Electronic check"): 0.6,
    ("PaperlessBilling", "Yes"): 0.3,
    ("SeniorCitizen", "Yes"): 0.3,
    ("OnlineSecurity", "Yes"): -0.5,
    ("TechSupport", "Yes"): -0.5,
}
CHURN_INTERCEPT = -1.6
CHURN_PER_TENURE_MONTH = -0.035

Codes = npt.NDArray[np.int8]  # a categorical column as indices into its levels

ID_DIGITS = 4
ID_LETTERS = 5


def customer_ids(rows: int) -> np.ndarray:
    """Unique ids matching `contract.ID_PATTERN` (``^\\d{4}-[A-Z]{5}$``).

    Row ``i`` is encoded as ``i % 10**4`` in digits and ``i // 10**4`` in five
    base-26 letters: unique for up to 10**4 * 26**5 (about 1.2e11) rows, and
    built as one byte matrix instead of a million Python strings.
    """
    capacity = 10**ID_DIGITS * 26**ID_LETTERS
    if rows > capacity:
        raise ValueError(f"{rows} rows: ids are unique only up to {capacity}")
    index = np.arange(rows, dtype=np.int64)
    digits, rest = index % 10**ID_DIGITS, index // 10**ID_DIGITS
    chars = np.empty((rows, ID_DIGITS + 1 + ID_LETTERS), dtype=np.uint8)
    for place in range(ID_DIGITS):  # most significant first
        chars[:, place] = ord("0") + digits // 10 ** (ID_DIGITS - 1 - place) % 10
    chars[:, ID_DIGITS] = ord("-")
    for place in range(ID_LETTERS):
        chars[:, ID_DIGITS + 1 + place] = ord("A") + rest // 26 ** (ID_LETTERS - 1 - place) % 26
    return chars.view(f"S{chars.shape[1]}").ravel().astype(str)


def _bounds(name: str) -> tuple[float, float]:
    """A numeric column's valid range from the contract."""
    column = next(n for n in contract.NUMERIC_FEATURES if n.name == name)
    return column.min_value, column.max_value


def _draw(rng: np.random.Generator, column: contract.Categorical, rows: int) -> Codes:
    """Level codes (indices into ``column.levels``) drawn with `SHARES`.

    Sentinel levels are never drawn: `IMPLICATIONS` sets them afterwards.
    """
    sentinels = {rule.then_value for rule in contract.IMPLICATIONS if column.name in rule.then}
    codes = [i for i, lv in enumerate(column.levels) if lv not in sentinels]
    shares = SHARES.get(column.name, {})
    weights = np.array([shares.get(column.levels[i], 1.0) for i in codes])
    drawn: Codes = rng.choice(np.array(codes, dtype=np.int8), size=rows, p=weights / weights.sum())
    return drawn


def synthesize(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` customer records in the raw CSV format, reproducible from ``seed``.

    Every value passes the contract: categorical levels, the cross-field rules,
    numeric ranges, unique ids. ``TotalCharges`` is text, a single space for
    customers with zero tenure, exactly the quirk `churn.data.clean` repairs.
    Text columns are built as integer codes and returned as pandas
    categoricals: turning a million numpy strings into pandas strings would
    cost more than drawing them.
    """
    rng = np.random.default_rng(seed)
    levels = contract.levels_by_column()
    codes = {c.name: _draw(rng, c, rows) for c in contract.CATEGORICAL_FEATURES}

    def has(column: str, level: str) -> npt.NDArray[np.bool_]:
        return np.equal(codes[column], levels[column].index(level))

    # A sentinel level holds exactly when its condition does ("No internet
    # service" exactly when InternetService is "No"): apply each rule.
    for rule in contract.IMPLICATIONS:
        when = has(rule.when, rule.when_value)
        for column in rule.then:
            codes[column][when] = levels[column].index(rule.then_value)

    low, high = (int(bound) for bound in _bounds("tenure"))
    share = np.empty(rows)
    for term, (a, b) in TENURE_BETA.items():
        mask = has("Contract", term)
        share[mask] = rng.beta(a, b, size=int(mask.sum()))
    tenure = np.ceil(low + share * (high - low)).astype(np.int64)
    tenure[rng.random(rows) < NEW_CUSTOMER_SHARE] = low

    monthly = rng.normal(0.0, 3.0, rows)
    for column, price in PRICE.items():
        monthly += price * has(column, "Yes")
    for level, price in INTERNET_PRICE.items():
        monthly += price * has("InternetService", level)
    for column in contract.ADD_ONS:
        price = STREAMING_PRICE if column.startswith("Streaming") else ADD_ON_PRICE
        monthly += price * has(column, "Yes")
    charge_low, charge_high = _bounds("MonthlyCharges")
    monthly = monthly.clip(max(charge_low, CHARGE_RANGE[0]), min(charge_high, CHARGE_RANGE[1]))
    monthly = monthly.round(2)
    # Charges to date: tenure x current price, give or take past price changes.
    total = tenure * monthly * rng.uniform(0.95, 1.05, rows)
    total = total.clip(*_bounds("TotalCharges")).round(2)
    total_text = np.where(tenure == 0, " ", total.astype(str))

    logit = CHURN_INTERCEPT + CHURN_PER_TENURE_MONTH * tenure
    for (column, level), weight in CHURN_LOGIT.items():
        logit = logit + weight * has(column, level)
    churned = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    label = levels[contract.LABEL.name]
    positive = label.index(contract.POSITIVE_LABEL)
    codes[contract.LABEL.name] = np.where(churned, positive, 1 - positive).astype(np.int8)

    records: dict[str, object] = {
        name: pd.Categorical.from_codes(code, categories=pd.Index(levels[name]))
        for name, code in codes.items()
    }
    records |= {
        contract.ID_COLUMN: customer_ids(rows),
        "SeniorCitizen": has("SeniorCitizen", "Yes").astype(np.int64),  # raw quirk: 0/1
        "tenure": tenure,
        "MonthlyCharges": monthly,
        "TotalCharges": total_text,
    }
    # Raw file order; a column the contract gains later goes last, not missing.
    order = sorted(
        records, key=lambda c: RAW_COLUMNS.index(c) if c in RAW_COLUMNS else len(records)
    )
    return pd.DataFrame({column: records[column] for column in order})
