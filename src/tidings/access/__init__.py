"""Who may do what: roles, permissions, scopes (pure), and the principals that hold them."""
