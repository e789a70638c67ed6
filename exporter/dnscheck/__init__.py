"""SPF, DKIM and DMARC checks of a domain's DNS against what mailcow sends (dnspython, real DNS)."""
