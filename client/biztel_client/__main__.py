from biztel_client.cli import main

raise SystemExit(main())
