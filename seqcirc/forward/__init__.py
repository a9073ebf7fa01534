"""Forward passes with interventions, one module per architecture."""
