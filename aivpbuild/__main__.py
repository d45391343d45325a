from aivpbuild.cli import main

main()
