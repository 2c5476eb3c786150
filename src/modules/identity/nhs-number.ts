/**
 * An NHS number is 10 digits; the last is a modulus-11 check digit over the first nine
 * weighted 10..2. A remainder giving 10 means the number is invalid.
 */
export function normaliseNhsNumber(input: string): string | null {
  const digits = input.replace(/[\s-]/g, '');
  if (!/^\d{10}$/.test(digits)) return null;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(digits[i]) * (10 - i);
  let check = 11 - (sum % 11);
  if (check === 11) check = 0;
  if (check === 10 || check !== Number(digits[9])) return null;
  return digits;
}
