"""Reading companion: books, ASR backends, alignment, tutor policy, TTS, progress store."""
