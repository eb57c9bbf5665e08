import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** The example's one table. */
export const items = pgTable('items', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Creates the table when it is missing (a real app runs migrations). */
export const CREATE_ITEMS = `CREATE TABLE IF NOT EXISTS items (
  id integer PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`;
