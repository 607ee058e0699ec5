"""Adapter workers: the agency's side of the backbone (sign, encrypt, publish; receive,
decrypt, verify, deliver). Built on ``backbone``'s shared core."""
