"""Offline speech: voice activity detection, recognition (pocketsphinx), synthesis (espeak-ng)."""
