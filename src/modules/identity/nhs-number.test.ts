import { describe, expect, it } from 'vitest';
import { normaliseNhsNumber } from './nhs-number';

/** The modulus-11 check digit for nine digits, or 10 when no digit can make them valid. */
function checkDigitFor(nine: string): number {
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(nine[i]) * (10 - i);
  const check = 11 - (sum % 11);
  return check === 11 ? 0 : check;
}

describe('normaliseNhsNumber', () => {
  it('accepts a valid number and returns its ten digits', () => {
    expect(normaliseNhsNumber('9434765919')).toBe('9434765919');
    expect(normaliseNhsNumber('4010232137')).toBe('4010232137');
  });

  it('refuses a number whose check digit is wrong', () => {
    expect(normaliseNhsNumber('9434765918')).toBeNull();
    // Every other last digit for the same nine is wrong too.
    for (let d = 0; d <= 9; d++) {
      if (d === 9) continue;
      expect(normaliseNhsNumber(`943476591${d}`), `last digit ${d}`).toBeNull();
    }
  });

  it.each([
    ['spaces', '943 476 5919'],
    ['dashes', '943-476-5919'],
    ['surrounding spaces', '  9434765919 '],
    ['mixed', '943 476-5919'],
  ])('accepts %s as separators and strips them', (_label, input) => {
    expect(normaliseNhsNumber(input)).toBe('9434765919');
  });

  it('refuses every number whose nine digits give a check digit of 10', () => {
    const nine = '000000006'; // 6 × 2 = 12, 12 mod 11 = 1, 11 − 1 = 10
    expect(checkDigitFor(nine)).toBe(10);
    for (let d = 0; d <= 9; d++) expect(normaliseNhsNumber(`${nine}${d}`), `last digit ${d}`).toBeNull();
  });

  it('maps a remainder of 0 to the check digit 0', () => {
    const nine = '000000000';
    expect(checkDigitFor(nine)).toBe(0);
    expect(normaliseNhsNumber('0000000000')).toBe('0000000000');
    expect(normaliseNhsNumber('0000000001')).toBeNull();
  });

  it.each([
    ['a letter', '94347659A9'],
    ['a trailing letter', '943476591x'],
    ['a dot', '943.476.5919'],
    ['a plus sign', '+9434765919'],
    ['full-width digits', '９４３４７６５９１９'],
    ['nine digits', '943476591'],
    ['eleven digits', '94347659190'],
    ['empty', ''],
  ])('refuses %s', (_label, input) => {
    expect(normaliseNhsNumber(input)).toBeNull();
  });
});
