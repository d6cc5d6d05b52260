"""Code the test folders share that is not a fixture (fixtures live in each folder's
conftest.py): real services' URLs and throwaway databases, storage shortcuts."""
