"""One LightningModule per model family; the networks they wrap live in genkit.models.nets."""
