"""The CPS card over PC/SC with real pcscd, the vsmartcard vpcd driver and an emulated card."""
