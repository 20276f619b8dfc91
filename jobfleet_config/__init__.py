"""Per-environment configuration (schema + TOML loader); no aws-cdk-lib, so every layer may import it."""
