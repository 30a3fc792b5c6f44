"""Loading the configuration: the one stage that asks every other stage to check its part of it."""
