"""Customer-churn prediction: data contract, pipeline stages and tooling."""
