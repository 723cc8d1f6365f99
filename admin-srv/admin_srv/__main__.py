"""`python -m admin_srv` starts admin-srv."""

from admin_srv.service import main

main()
