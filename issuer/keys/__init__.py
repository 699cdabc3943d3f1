"""The key ring's parts: error types, JWK encoding, the manifest and the files on disk.

`issuer.keyring.KeyRing` assembles them; everything else in the issuer talks to
the KeyRing only.
"""
