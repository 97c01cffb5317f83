import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'data/', 'node_modules/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // The tests reach the server only through dist/src/cli.js and its
    // protocols, never through its modules.
    files: ['test/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/src/**'] }],
    },
  },
)
