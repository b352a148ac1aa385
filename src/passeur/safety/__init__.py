"""Safety: velocity mux, collision monitor, dead-man timeouts, e-stop (one node)."""
