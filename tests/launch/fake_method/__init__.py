"""A method for launcher tests, registered by the tests as `fake_method.run:run`."""
