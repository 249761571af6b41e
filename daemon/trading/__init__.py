"""Trading: strategy intents, risk checks, bracket execution, and the journal that keeps it all."""
