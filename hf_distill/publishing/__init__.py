"""Publishing a student: the model card (and its template), the Space, and `publish`, which pushes both."""
