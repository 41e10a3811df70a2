import unittest

from relman.versions import compare, pick, satisfies


class CompareTest(unittest.TestCase):
    def test_numeric_parts(self):
        self.assertEqual(compare("1.2.3", "1.2.4"), -1)
        self.assertEqual(compare("1.10.0", "1.9.0"), 1)
        self.assertEqual(compare("2.0.0", "2.0.0"), 0)

    def test_prerelease_lower_than_release(self):
        self.assertEqual(compare("1.0.0-rc.1", "1.0.0"), -1)


class ConstraintTest(unittest.TestCase):
    def test_range(self):
        self.assertTrue(satisfies("1.5.0", ">=1.2.0, <2.0.0"))
        self.assertFalse(satisfies("2.0.0", ">=1.2.0, <2.0.0"))

    def test_caret(self):
        self.assertTrue(satisfies("1.9.9", "^1.2.3"))
        self.assertFalse(satisfies("2.0.0", "^1.2.3"))

    def test_pick(self):
        self.assertEqual(pick(["1.0.0", "1.4.2", "2.1.0"], "^1.0.0"), "1.4.2")


if __name__ == "__main__":
    unittest.main()
