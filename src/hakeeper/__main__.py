from hakeeper.cli.main import app

app()
