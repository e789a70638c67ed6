"""DNS checks of mailcow's domains: SPF (with its lookup limit), DKIM against mailcow's key, DMARC."""
